from ltm.store.db import Database, from_db_time

_COLUMNS = ("id", "run_id", "project_id", "name", "type", "path", "size_bytes", "step", "created_at")


def insert(db: Database, artifact: dict) -> None:
    with db.cursor() as cur:
        cur.execute(
            f"INSERT INTO artifacts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
            [artifact[c] for c in _COLUMNS],
        )


def get(db: Database, artifact_id: str) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM artifacts WHERE id = ?", [artifact_id])
    return _with_tags(db, rows)[0] if rows else None


def find_by_path(db: Database, run_id: str, type_: str, path: str) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM artifacts WHERE run_id = ? AND type = ? AND path = ?", [run_id, type_, path])
    return _with_tags(db, rows)[0] if rows else None


def list_for_run(db: Database, run_id: str) -> list[dict]:
    rows = db.fetch_dicts("SELECT * FROM artifacts WHERE run_id = ? ORDER BY created_at, id", [run_id])
    return _with_tags(db, rows)


def add_tag(db: Database, artifact_id: str, value: str, notes: str | None, at, applied_by: str) -> None:
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO artifact_tags (artifact_id, value, notes, applied_at, applied_by) VALUES (?, ?, ?, ?, ?)",
            [artifact_id, value, notes, at, applied_by],
        )


def _with_tags(db: Database, rows: list[dict]) -> list[dict]:
    if not rows:
        return rows
    ids = [row["id"] for row in rows]
    tags = db.fetch_dicts(
        f"SELECT artifact_id, value, notes, applied_at, applied_by FROM artifact_tags "
        f"WHERE artifact_id IN ({', '.join('?' for _ in ids)}) ORDER BY applied_at, rowid",
        ids,
    )
    by_artifact: dict[str, list] = {}
    for tag in tags:
        by_artifact.setdefault(tag.pop("artifact_id"), []).append(
            {**tag, "applied_at": from_db_time(tag["applied_at"])}
        )
    for row in rows:
        row["created_at"] = from_db_time(row["created_at"])
        row["tags"] = by_artifact.get(row["id"], [])
    return rows
