import json

from ltm.store.db import Database, from_db_time
from ltm.vocabulary import TagValue

_COLUMNS = ("id", "run_id", "project_id", "name", "type", "path", "size_bytes", "step", "created_at", "checksums")


def insert(db: Database, artifact: dict) -> None:
    values = {**artifact, "checksums": _encoded(artifact.get("checksums"))}
    with db.cursor() as cur:
        cur.execute(
            f"INSERT INTO artifacts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
            [values[c] for c in _COLUMNS],
        )


def clear_corrupted(db: Database, artifact_id: str) -> None:
    with db.writing() as cur:
        cur.execute("UPDATE artifacts SET corrupted_at = NULL, corruption = NULL WHERE id = ?", [artifact_id])


def _encoded(checksums: dict | None) -> str | None:
    return None if checksums is None else json.dumps(checksums, ensure_ascii=False, sort_keys=True)


def mark_corrupted(db: Database, artifact_id: str, corruption: str, at) -> None:
    """The files no longer match what was written: kept as they are, marked so everyone sees it."""
    with db.writing() as cur:
        cur.execute(
            "UPDATE artifacts SET corrupted_at = coalesce(corrupted_at, ?), corruption = ? WHERE id = ?",
            [at, corruption, artifact_id],
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
    add_tags(db, [(artifact_id, value, notes)], at, applied_by)


def add_tags(db: Database, tags: list[tuple[str, str, str | None]], at, applied_by: str) -> None:
    """(artifact id, value, notes) events, all or none, in this order."""
    with db.writing(transaction=True) as cur:
        insert_tags(cur, tags, at, applied_by)


def insert_tags(cur, tags: list[tuple[str, str, str | None]], at, applied_by: str) -> None:
    """Inside the caller's transaction."""
    for artifact_id, value, notes in tags:
        cur.execute(
            "INSERT INTO artifact_tags (artifact_id, value, notes, applied_at, applied_by) VALUES (?, ?, ?, ?, ?)",
            [artifact_id, value, notes, at, applied_by],
        )


def release_events(db: Database, project_id: str) -> list[dict]:
    """Every 发布 tag event of the project's checkpoints, newest first, with its checkpoint and run names."""
    rows = db.fetch_dicts(
        "SELECT t.artifact_id, a.name AS artifact_name, a.step, a.run_id, r.name AS run_name, t.notes, "
        "t.applied_at AS tagged_at, t.applied_by AS tagged_by "
        "FROM artifact_tags t JOIN artifacts a ON a.id = t.artifact_id LEFT JOIN runs r ON r.id = a.run_id "
        "WHERE a.project_id = ? AND t.value = ? ORDER BY t.applied_at DESC, t.rowid DESC",
        [project_id, TagValue.RELEASE.value],
    )
    latest = _latest_tags(db, project_id)
    for row in rows:
        row["tagged_at"] = from_db_time(row["tagged_at"])
        row["latest_tag"] = latest.get(row["artifact_id"])
    return rows


def current_release(db: Database, project_id: str) -> dict | None:
    """The checkpoint most recently tagged 发布 whose latest tag is still 发布 (its newest 发布 event)."""
    return next((e for e in release_events(db, project_id) if e["latest_tag"] == TagValue.RELEASE.value), None)


def _latest_tags(db: Database, project_id: str) -> dict[str, str]:
    rows = db.fetch_all(
        "SELECT artifact_id, value FROM (SELECT t.artifact_id, t.value, row_number() OVER "
        "(PARTITION BY t.artifact_id ORDER BY t.applied_at DESC, t.rowid DESC) AS n FROM artifact_tags t "
        "WHERE t.artifact_id IN (SELECT id FROM artifacts WHERE project_id = ?)) WHERE n = 1",
        [project_id],
    )
    return dict(rows)


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
        row["corrupted_at"] = from_db_time(row["corrupted_at"])
        row["checksums"] = json.loads(row["checksums"]) if row["checksums"] else None
        row["tags"] = by_artifact.get(row["id"], [])
    return rows
