"""Queries behind automatic restarts and hang detection."""

from ltm.store.db import Database
from ltm.store.runs import decode


def restart_of(db: Database, run_id: str) -> str | None:
    """The id of a run that restarts (or requeues) run `run_id`, if there is one."""
    row = db.fetch_one("SELECT id FROM runs WHERE restart_of = ? ORDER BY created_at LIMIT 1", [run_id])
    return row[0] if row else None


def hang_watch(db: Database, running: str) -> list[tuple[dict, float | None]]:
    """Runs in status `running` that hang detection looks at, each with its project's hang_minutes: those of
    projects that set it, and those already found hung (they are ended even if the project turned detection off)."""
    rows = db.fetch_dicts(
        "SELECT r.*, p.hang_minutes AS project_hang_minutes FROM runs r JOIN projects p ON p.id = r.project_id "
        "WHERE r.status = ? AND (p.hang_minutes IS NOT NULL OR r.hung_at IS NOT NULL) ORDER BY r.created_at",
        [running],
    )
    watched = []
    for row in rows:
        minutes = row.pop("project_hang_minutes")
        watched.append((decode(row), minutes))
    return watched
