"""A project's releases: every move of its current release (发布, 回滚), with who asked, who decided, who withdrew
it and where its frozen copy lives. At most one row per project is 生效 (the current release); each move is one
transaction together with the tag events that say the same on the checkpoints."""

import json

from ltm.store import artifacts as artifact_store
from ltm.store.db import Database, from_db_time
from ltm.vocabulary import ReleaseState, TagValue

_TIMES = ("requested_at", "decided_at", "withdrawn_at")


def _decode(row: dict) -> dict:
    for key in _TIMES:
        row[key] = from_db_time(row[key])
    row["checksums"] = json.loads(row["checksums"]) if row["checksums"] else None
    row["manifest"] = json.loads(row["manifest"]) if row["manifest"] else None
    return row


def next_number(db: Database, project_id: str) -> int:
    return db.fetch_one("SELECT coalesce(max(number), 0) + 1 FROM releases WHERE project_id = ?", [project_id])[0]


def get(db: Database, release_id: str) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM releases WHERE id = ?", [release_id])
    return _decode(rows[0]) if rows else None


def history(db: Database, project_id: str) -> list[dict]:
    rows = db.fetch_dicts("SELECT * FROM releases WHERE project_id = ? ORDER BY number DESC", [project_id])
    return [_decode(row) for row in rows]


def current(db: Database, project_id: str) -> dict | None:
    rows = db.fetch_dicts(
        "SELECT * FROM releases WHERE project_id = ? AND state = ?", [project_id, ReleaseState.CURRENT.value]
    )
    return _decode(rows[0]) if rows else None


def insert_pending(db: Database, release: dict) -> None:
    with db.writing(transaction=True) as cur:
        _insert(cur, {**release, "state": ReleaseState.PENDING.value})


def make_current(db: Database, release: dict, at, user: str, decided: dict | None = None) -> None:
    """In one transaction: the project's current release becomes 已被取代, `release` becomes 生效 (inserted when
    new, with `decided` when it was pending), the checkpoint is tagged 发布 and the one it replaces 归档."""
    with db.writing(transaction=True) as cur:
        found = cur.execute(
            "SELECT id, artifact_id FROM releases WHERE project_id = ? AND state = ?",
            [release["project_id"], ReleaseState.CURRENT.value],
        ).fetchone()
        tags = [(release["artifact_id"], TagValue.RELEASE.value, release["notes"])]
        if found:
            cur.execute("UPDATE releases SET state = ? WHERE id = ?", [ReleaseState.SUPERSEDED.value, found[0]])
            if found[1] != release["artifact_id"]:
                note = f"被 {release['run_name']} 的 {release['artifact_name']} 取代"
                tags.insert(0, (found[1], TagValue.ARCHIVE.value, note))
        if decided is None:
            _insert(cur, {**release, "state": ReleaseState.CURRENT.value})
        else:
            assignments = ", ".join(f"{column} = ?" for column in decided)
            cur.execute(
                f"UPDATE releases SET state = ?, {assignments} WHERE id = ?",
                [ReleaseState.CURRENT.value, *decided.values(), release["id"]],
            )
        ids = [tag[0] for tag in tags]
        marks = ", ".join("?" for _ in ids)
        existing = {row[0] for row in cur.execute(f"SELECT id FROM artifacts WHERE id IN ({marks})", ids).fetchall()}
        artifact_store.insert_tags(cur, [tag for tag in tags if tag[0] in existing], at, user)  # a deleted run's


def decide(db: Database, release_id: str, state: str, decided: dict) -> None:
    assignments = ", ".join(f"{column} = ?" for column in decided)
    with db.writing() as cur:
        cur.execute(
            f"UPDATE releases SET state = ?, {assignments} WHERE id = ?", [state, *decided.values(), release_id]
        )


def withdraw(db: Database, release: dict, at, user: str, note: str) -> None:
    """In one transaction: the current release becomes 已撤销 and its checkpoint is tagged 归档."""
    with db.writing(transaction=True) as cur:
        cur.execute(
            "UPDATE releases SET state = ?, withdrawn_by = ?, withdrawn_at = ? WHERE id = ?",
            [ReleaseState.WITHDRAWN.value, user, at, release["id"]],
        )
        if cur.execute("SELECT 1 FROM artifacts WHERE id = ?", [release["artifact_id"]]).fetchone():
            artifact_store.insert_tags(cur, [(release["artifact_id"], TagValue.ARCHIVE.value, note)], at, user)


def _insert(cur, release: dict) -> None:
    values = {
        **release,
        "checksums": json.dumps(release["checksums"]) if release.get("checksums") is not None else None,
        "manifest": json.dumps(release["manifest"], ensure_ascii=False) if release.get("manifest") else None,
    }
    columns = list(values)
    cur.execute(
        f"INSERT INTO releases ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [values[c] for c in columns],
    )
