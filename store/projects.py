import json

from ltm.store.db import Database, from_db_time
from ltm.vocabulary import ACTIVE_RUN_STATUSES, ProjectStatus, Visibility

_SELECT = f"""
SELECT p.*, coalesce(r.run_count, 0) AS run_count,
       CASE WHEN p.archived THEN '{ProjectStatus.ARCHIVED.value}'
            WHEN coalesce(r.active_count, 0) > 0 THEN '{ProjectStatus.ACTIVE.value}'
            WHEN coalesce(r.run_count, 0) > 0 THEN '{ProjectStatus.IDLE.value}'
            ELSE '{ProjectStatus.DRAFT.value}' END AS status
FROM projects p
LEFT JOIN (SELECT project_id, count(*) AS run_count,
                  count(*) FILTER (WHERE status IN (?, ?, ?)) AS active_count
           FROM runs {{runs_of}} GROUP BY project_id) r ON r.project_id = p.id
"""


_JSON = ("default_hyperparameters", "metric_thresholds", "log_rules")
_SETTINGS = ("release_approval", "preemption", "max_restarts", "hang_minutes", "metric_thresholds", "log_rules")


def _decode(row: dict) -> dict:
    for key in _JSON:
        row[key] = (
            json.loads(row[key]) if row.get(key) is not None else ([] if key != "default_hyperparameters" else {})
        )
    row["tags"] = list(row["tags"])
    for key in ("created_at", "updated_at"):
        row[key] = from_db_time(row[key])
    return row


def _snapshot(project: dict) -> dict:
    keys = (
        "name",
        "description",
        "objective",
        "task_type",
        "base_model",
        "owner",
        "tags",
        "default_hyperparameters",
        "default_trainer",
        "visibility",
        "default_priority",
        *_SETTINGS,
        "archived",
    )
    return {k: project.get(k) for k in keys}


_INSERTED = (
    "id",
    "name",
    "description",
    "objective",
    "task_type",
    "base_model",
    "owner",
    "tags",
    "default_hyperparameters",
    "archived",
    "version",
    "created_at",
    "updated_at",
    "default_trainer",
    "visibility",
    "default_priority",
    *_SETTINGS,
)


def insert(db: Database, project: dict) -> None:
    """Insert a new project and its version 1 in one transaction."""
    values = {**project, "version": 1, "default_priority": project.get("default_priority") or 0}
    for key in _SETTINGS:
        values.setdefault(key, None)
    values["release_approval"] = bool(values["release_approval"])
    values["preemption"] = bool(values["preemption"])
    values["max_restarts"] = values["max_restarts"] or 0
    for key in _JSON:
        default = {} if key == "default_hyperparameters" else []
        values[key] = json.dumps(values[key] if values[key] is not None else default, ensure_ascii=False)
    with db.transaction() as cur:
        cur.execute(
            f"INSERT INTO projects ({', '.join(_INSERTED)}) VALUES ({', '.join('?' for _ in _INSERTED)})",
            [values[c] for c in _INSERTED],
        )
        changes = {
            k: {"old": None, "new": v} for k, v in _snapshot(project).items() if v not in (None, [], {}, False, 0)
        }
        _insert_version(cur, project["id"], 1, project["created_at"], changes, _snapshot(project))


def _insert_version(cur, project_id: str, version: int, at, changes: dict, snapshot: dict) -> None:
    cur.execute(
        "INSERT INTO project_versions VALUES (?, ?, ?, ?, ?)",
        [project_id, version, at, json.dumps(changes, ensure_ascii=False), json.dumps(snapshot, ensure_ascii=False)],
    )


def name_taken(db: Database, name: str, other_than: str | None = None) -> bool:
    """Whether a project (other than `other_than`) already has this name."""
    return (
        db.fetch_one("SELECT count(*) FROM projects WHERE name = ? AND id IS DISTINCT FROM ?", [name, other_than])[0]
        > 0
    )


def get_row(db: Database, project_id: str) -> dict | None:
    """The project's own columns, without run counts: what checks on a project's runs need."""
    rows = db.fetch_dicts("SELECT * FROM projects WHERE id = ?", [project_id])
    return _decode(rows[0]) if rows else None


def get(db: Database, project_id: str) -> dict | None:
    """One project; its run counts aggregate only its own runs."""
    sql = _SELECT.format(runs_of="WHERE project_id = ?") + " WHERE p.id = ?"
    rows = db.fetch_dicts(sql, [*ACTIVE_RUN_STATUSES, project_id, project_id])
    return _decode(rows[0]) if rows else None


def list_(
    db: Database,
    owner: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    query: str | None = None,
    reader: str | None = None,
    reader_project: str | None = None,
) -> list[dict]:
    """Projects matching the filters. With `reader`, only those they may see: team-visible ones, theirs, those
    listing them as a member, and `reader_project` (a run token's own project)."""
    sql = "SELECT * FROM (" + _SELECT.format(runs_of="") + ") p WHERE true"
    params: list = [*ACTIVE_RUN_STATUSES]
    if reader is not None:
        sql += (
            " AND (visibility = ? OR owner = ? OR id = ? OR EXISTS "
            "(SELECT 1 FROM project_members m WHERE m.project_id = p.id AND m.user_name = ?))"
        )
        params += [Visibility.TEAM.value, reader, reader_project, reader]
    if owner is not None:
        sql += " AND owner = ?"
        params.append(owner)
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    if tag is not None:
        sql += " AND list_contains(tags, ?)"
        params.append(tag)
    if query:
        sql += " AND contains(lower(name), lower(?))"
        params.append(query)
    sql += " ORDER BY created_at DESC, id"
    return [_decode(row) for row in db.fetch_dicts(sql, params)]


UPDATABLE_COLUMNS = frozenset(
    {
        "name",
        "owner",
        "description",
        "objective",
        "task_type",
        "base_model",
        "tags",
        "default_hyperparameters",
        "default_trainer",
        "visibility",
        "default_priority",
        *_SETTINGS,
        "archived",
    }
)


_updates = 0


def update(db: Database, project_id: str, changes: dict, at) -> int:
    """Apply `changes` ({column: new value}) and record them as the next version; returns it."""
    assert changes and set(changes) <= UPDATABLE_COLUMNS, changes
    try:
        return _update(db, project_id, changes, at)
    finally:
        global _updates
        _updates += 1


def updates() -> int:
    """How many project updates this process has made: a reader caching project settings reads again after it
    changes."""
    return _updates


def _update(db: Database, project_id: str, changes: dict, at) -> int:
    with db.writing(transaction=True) as cur:
        current = cur.execute("SELECT * FROM projects WHERE id = ?", [project_id])
        columns = [d[0] for d in current.description]
        project = _decode(dict(zip(columns, current.fetchone())))
        recorded = {k: {"old": project[k], "new": v} for k, v in changes.items()}
        project.update(changes)
        version = project["version"] + 1
        stored = {k: json.dumps(v, ensure_ascii=False) if k in _JSON else v for k, v in changes.items()}
        assignments = ", ".join(f"{column} = ?" for column in stored)
        cur.execute(
            f"UPDATE projects SET {assignments}, version = ?, updated_at = ? WHERE id = ?",
            [*stored.values(), version, at, project_id],
        )
        _insert_version(cur, project_id, version, at, recorded, _snapshot(project))
        return version


def versions(db: Database, project_id: str) -> list[dict]:
    rows = db.fetch_dicts(
        "SELECT version, created_at, changes, snapshot FROM project_versions WHERE project_id = ? ORDER BY version",
        [project_id],
    )
    for row in rows:
        row["created_at"] = from_db_time(row["created_at"])
        row["changes"] = json.loads(row["changes"])
        row["snapshot"] = json.loads(row["snapshot"])
    return rows
