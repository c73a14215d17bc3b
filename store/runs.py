import json

from ltm.store.db import Database, from_db_time

_JSON_COLUMNS = ("hyperparameters", "resources", "metrics", "metric_steps", "devices", "environment", "labels")
_TIME_COLUMNS = (
    "created_at",
    "started_at",
    "updated_at",
    "finished_at",
    "cancelled_at",
    "leased_at",
    "released_at",
    "preempted_at",
    "progressed_at",
    "hung_at",
)
COLUMNS = (
    "id",
    "project_id",
    "name",
    "status",
    "progress",
    "model",
    "dataset",
    "hyperparameters",
    "resources",
    "metrics",
    "gpu_utilization",
    "created_at",
    "started_at",
    "updated_at",
    "finished_at",
    "cancelled_at",
    "resumed_from",
    "parent_run_id",
    "start_step",
    "current_step",
    "total_steps",
    "project_version",
    "message",
    "flow_run_id",
    "metric_steps",
    "trainer",
    "priority",
    "created_by",
    "devices",
    "gpu_host",
    "leased_at",
    "released_at",
    "entrypoint",
    "source",
    "processes",
    "code_version",
    "sweep_id",
    "trial_number",
    "rung",
    "stop_at_step",
    "environment",
    "max_restarts",
    "restart_of",
    "restarts",
    "labels",
    "preempted_by",
    "preempted_at",
    "progressed_at",
    "hung_at",
)
UPDATABLE_COLUMNS = frozenset(COLUMNS) - {"id", "project_id", "created_at"}


def _encode(values: dict) -> dict:
    return {k: json.dumps(v, ensure_ascii=False) if k in _JSON_COLUMNS else v for k, v in values.items()}


def decode(row: dict) -> dict:
    for key in _JSON_COLUMNS:
        row[key] = None if row[key] is None else json.loads(row[key])  # environment is NULL on older runs
    for key in _TIME_COLUMNS:
        row[key] = from_db_time(row[key])
    return row


def insert(db: Database, run: dict) -> None:
    values = _encode(run)
    placeholders = ", ".join("?" for _ in COLUMNS)
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({placeholders})", [values[c] for c in COLUMNS])


def get(db: Database, run_id: str) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM runs WHERE id = ?", [run_id])
    return decode(rows[0]) if rows else None


def project_of(db: Database, run_id: str) -> str | None:
    row = db.fetch_one("SELECT project_id FROM runs WHERE id = ?", [run_id])
    return row[0] if row else None


def list_for_project(db: Database, project_id: str) -> list[dict]:
    rows = db.fetch_dicts("SELECT * FROM runs WHERE project_id = ? ORDER BY created_at, id", [project_id])
    return [decode(row) for row in rows]


def list_by_status(db: Database, statuses: list[str]) -> list[dict]:
    placeholders = ", ".join("?" for _ in statuses)
    rows = db.fetch_dicts(f"SELECT * FROM runs WHERE status IN ({placeholders}) ORDER BY created_at", statuses)
    return [decode(row) for row in rows]


def stranded(db: Database, queued: str, created_before) -> list[dict]:
    """Queued runs never handed to an orchestrator (no flow_run_id) that were created (or, for GPU runs, leased
    their devices) before `created_before`."""
    rows = db.fetch_dicts(
        "SELECT * FROM runs WHERE status = ? AND flow_run_id IS NULL AND coalesce(leased_at, created_at) < ? "
        "ORDER BY created_at",
        [queued, created_before],
    )
    return [decode(row) for row in rows]


def count_for_project(db: Database, project_id: str) -> int:
    return db.fetch_one("SELECT count(*) FROM runs WHERE project_id = ?", [project_id])[0]


def update(db: Database, run_id: str, values: dict) -> None:
    assert values and set(values) <= UPDATABLE_COLUMNS, values
    encoded = _encode(values)
    assignments = ", ".join(f"{column} = ?" for column in encoded)
    with db.writing() as cur:
        cur.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*encoded.values(), run_id])


def delete(db: Database, run_id: str) -> None:
    with db.writing() as cur:
        cur.execute("DELETE FROM runs WHERE id = ?", [run_id])


SORTABLE = ("created_at", "started_at", "updated_at", "finished_at", "name", "status", "progress", "priority")
METRIC_STATS = ("last", "min", "max")


def _json_key(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search(
    db: Database,
    project_id: str,
    statuses: list[str] | None = None,
    name: str | None = None,
    hyperparameters: dict[str, str] | None = None,
    checkpoint_tag: str | None = None,
    parent_run_id: str | None = None,
    sort: str = "created_at",
    metric: tuple[str, str] | None = None,
    descending: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """One page of a project's runs matching the filters, and how many match in all. Sorted by a column, or by a
    metric's last, min or max value (`metric` = (name, stat)); runs without a value come last, ties oldest first.
    Hyperparameters match when the stored JSON value reads as the given text; `checkpoint_tag` keeps runs with a
    checkpoint that was ever given that tag; `parent_run_id` keeps the runs resumed from that run's checkpoints."""
    where, params = ["r.project_id = ?"], [project_id]
    if statuses:
        where.append(f"r.status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
    if name:
        where.append("contains(lower(r.name), lower(?))")
        params.append(name)
    for key, value in (hyperparameters or {}).items():
        where.append("json_extract_string(r.hyperparameters, ?) = ?")
        params += [_json_key(key), value]
    if checkpoint_tag:
        where.append(
            "EXISTS (SELECT 1 FROM artifacts a JOIN artifact_tags t ON t.artifact_id = a.id "
            "WHERE a.run_id = r.id AND t.value = ?)"
        )
        params.append(checkpoint_tag)
    if parent_run_id:
        where.append("r.parent_run_id = ?")
        params.append(parent_run_id)
    condition = " AND ".join(where)
    total = db.fetch_one(f"SELECT count(*) FROM runs r WHERE {condition}", params)[0]

    join, join_params, sort_params = "", [], []
    if metric is None:
        assert sort in SORTABLE, sort
        key = f"r.{sort}"
    elif metric[1] == "last":
        key = "TRY_CAST(json_extract_string(r.metrics, ?) AS DOUBLE)"
        sort_params = [_json_key(metric[0])]
    else:
        aggregate = {"min": "min(min)", "max": "max(max)"}[metric[1]]
        join = (
            f"LEFT JOIN (SELECT run_id, {aggregate} AS value FROM metric_blocks WHERE name = ? "
            "AND run_id IN (SELECT id FROM runs WHERE project_id = ?) GROUP BY run_id) m ON m.run_id = r.id"
        )
        join_params = [metric[0], project_id]
        key = "m.value"
    direction = "DESC" if descending else "ASC"
    page = "" if limit is None else "LIMIT ? OFFSET ?"
    rows = db.fetch_dicts(
        f"SELECT r.* FROM runs r {join} WHERE {condition} "
        f"ORDER BY {key} {direction} NULLS LAST, r.created_at, r.id {page}",
        [*join_params, *params, *sort_params, *([limit, offset] if limit is not None else [])],
    )
    return [decode(row) for row in rows], total
