"""API tokens (only their hashes), project members, and the audit trail."""

from datetime import datetime

from ltm.store.db import Database, from_db_time, utc_now
from ltm.vocabulary import Role


def insert_token(db: Database, token: dict) -> None:
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO tokens (id, token_hash, user_name, role, run_id, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                token["id"],
                token["token_hash"],
                token["user_name"],
                token["role"],
                token["run_id"],
                token["created_by"],
                token["created_at"],
            ],
        )


def find_token(db: Database, token_hash: str) -> dict | None:
    """A live token; launch codes are not tokens and are never found here."""
    rows = db.fetch_dicts(
        "SELECT * FROM tokens WHERE token_hash = ? AND revoked_at IS NULL AND role <> ?",
        [token_hash, Role.LAUNCH.value],
    )
    return rows[0] if rows else None


_LIVE_LAUNCH_CODE = "token_hash = ? AND run_id = ? AND role = ? AND revoked_at IS NULL AND created_at >= ?"


def launch_code_is_live(db: Database, code_hash: str, run_id: str, issued_after: datetime) -> bool:
    found = db.fetch_one(
        f"SELECT count(*) FROM tokens WHERE {_LIVE_LAUNCH_CODE}", [code_hash, run_id, Role.LAUNCH.value, issued_after]
    )
    return found[0] > 0


def spend_launch_code(db: Database, code_hash: str, run_id: str, issued_after: datetime) -> bool:
    """Mark the code used; False when it was not live (another caller spent it first, or it expired)."""
    with db.writing() as cur:
        cur.execute(
            f"UPDATE tokens SET revoked_at = ? WHERE {_LIVE_LAUNCH_CODE}",
            [utc_now(), code_hash, run_id, Role.LAUNCH.value, issued_after],
        )
        return cur.fetchone()[0] > 0


def list_tokens(db: Database) -> list[dict]:
    return _token_rows(db, "run_id IS NULL", [])


def _token_rows(db: Database, where: str, parameters: list) -> list[dict]:
    rows = db.fetch_dicts(
        "SELECT id, user_name, role, run_id, created_by, created_at, revoked_at FROM tokens "
        f"WHERE {where} ORDER BY created_at",
        parameters,
    )
    for row in rows:
        row["created_at"], row["revoked_at"] = from_db_time(row["created_at"]), from_db_time(row["revoked_at"])
    return rows


def revoke_token(db: Database, token_id: str) -> dict | None:
    """The token as revoked now, or None when there is no such live token."""
    with db.writing() as cur:
        cur.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [utc_now(), token_id])
        if not cur.fetchone()[0]:
            return None
    return _token_rows(db, "id = ?", [token_id])[0]


def revoke_run_tokens(db: Database, run_id: str) -> None:
    with db.writing() as cur:
        cur.execute("UPDATE tokens SET revoked_at = ? WHERE run_id = ? AND revoked_at IS NULL", [utc_now(), run_id])


def members(db: Database, project_id: str) -> list[str]:
    return [
        row[0]
        for row in db.fetch_all(
            "SELECT user_name FROM project_members WHERE project_id = ? ORDER BY added_at, user_name", [project_id]
        )
    ]


def set_members(db: Database, project_id: str, user_names: list[str]) -> None:
    with db.writing(transaction=True) as cur:
        cur.execute("DELETE FROM project_members WHERE project_id = ?", [project_id])
        now = utc_now()
        for name in user_names:
            cur.execute("INSERT INTO project_members VALUES (?, ?, ?)", [project_id, name, now])


def record(
    db: Database,
    actor: str,
    action: str,
    project_id: str | None = None,
    run_id: str | None = None,
    target: str | None = None,
    details: str | None = None,
) -> None:
    """One audit entry; the run's current name is kept with it, so the entry still names the run once it is gone."""
    with db.cursor() as cur:
        found = cur.execute("SELECT name FROM runs WHERE id = ?", [run_id]).fetchone() if run_id else None
        cur.execute(
            "INSERT INTO audit_events (occurred_at, actor, action, project_id, run_id, target, details, run_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [utc_now(), actor, action, project_id, run_id, target, details, found[0] if found else None],
        )


def audit_trail(db: Database, project_id: str, limit: int) -> list[dict]:
    rows = db.fetch_dicts(
        "SELECT occurred_at, actor, action, run_id, run_name, target, details FROM audit_events "
        "WHERE project_id = ? ORDER BY occurred_at DESC, rowid DESC LIMIT ?",
        [project_id, limit],
    )
    for row in rows:
        row["occurred_at"] = from_db_time(row["occurred_at"])
    return rows


def names_of(db: Database, ids: set[str]) -> dict[str, str]:
    """The current names of the runs and artifacts among `ids` that still exist."""
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    rows = db.fetch_all(
        f"SELECT id, name FROM runs WHERE id IN ({marks}) "
        f"UNION ALL SELECT id, name FROM artifacts WHERE id IN ({marks})",
        [*ids, *ids],
    )
    return dict(rows)
