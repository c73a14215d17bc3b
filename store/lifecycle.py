"""Retention policies and deleting runs and projects with everything recorded about them."""

from ltm.store.db import Database, from_db_time, utc_now
from ltm.vocabulary import ACTIVE_RUN_STATUSES

_ARTIFACT_COLUMNS = (
    "a.id, a.run_id, a.project_id, a.type, a.name, a.path, a.size_bytes, a.step, "
    "coalesce((SELECT list(DISTINCT t.value ORDER BY t.value) FROM artifact_tags t WHERE t.artifact_id = a.id), "
    "[]) AS tags"
)


def _marks(values: list) -> str:
    return ", ".join("?" for _ in values)


# Retention policies


def get_policy(db: Database, project_id: str) -> dict:
    """The project's policy; a project that never set one keeps every checkpoint."""
    row = db.fetch_one("SELECT keep_last, updated_at FROM retention_policies WHERE project_id = ?", [project_id])
    keep_last, updated_at = row if row else (None, None)
    return {"project_id": project_id, "keep_last": keep_last, "updated_at": from_db_time(updated_at)}


def set_policy(db: Database, project_id: str, keep_last: int | None) -> dict:
    with db.writing() as cur:
        cur.execute(
            "INSERT INTO retention_policies VALUES (?, ?, ?) "
            "ON CONFLICT (project_id) DO UPDATE SET keep_last = excluded.keep_last, updated_at = excluded.updated_at",
            [project_id, keep_last, utc_now()],
        )
    return get_policy(db, project_id)


def retention_candidates(db: Database, project_id: str, keep_last: int) -> list[dict]:
    """Checkpoints of finished runs beyond the newest `keep_last` by step that carry no tag and that no
    active run is resuming from."""
    return db.fetch_dicts(
        f"""SELECT {_ARTIFACT_COLUMNS} FROM (
                SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY step DESC NULLS LAST,
                                             created_at DESC, id DESC) AS newest
                FROM artifacts WHERE project_id = ? AND type = 'checkpoint') a
            JOIN runs r ON r.id = a.run_id
            WHERE a.newest > ? AND r.status NOT IN ({_marks(ACTIVE_RUN_STATUSES)})
              AND NOT EXISTS (SELECT 1 FROM artifact_tags t WHERE t.artifact_id = a.id)
              AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.resumed_from = a.id
                              AND c.status IN ({_marks(ACTIVE_RUN_STATUSES)}))
            ORDER BY r.created_at, r.id, a.step NULLS FIRST, a.id""",
        [project_id, keep_last, *ACTIVE_RUN_STATUSES, *ACTIVE_RUN_STATUSES],
    )


# What a deletion would remove


def artifacts_of_runs(db: Database, run_ids: list[str]) -> list[dict]:
    if not run_ids:
        return []
    return db.fetch_dicts(
        f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a WHERE a.run_id IN ({_marks(run_ids)}) "
        "ORDER BY a.run_id, a.created_at, a.id",
        run_ids,
    )


def footprint(db: Database, run_ids: list[str]) -> dict:
    """How many log lines and metric points the runs hold."""
    if not run_ids:
        return {"log_lines": 0, "metric_points": 0}
    row = db.fetch_one(
        f"SELECT (SELECT count(*) FROM logs WHERE run_id IN ({_marks(run_ids)})), "
        f"(SELECT count(*) FROM metrics WHERE run_id IN ({_marks(run_ids)}))",
        [*run_ids, *run_ids],
    )
    return {"log_lines": row[0], "metric_points": row[1]}


def version_count(db: Database, project_id: str) -> int:
    return db.fetch_one("SELECT count(*) FROM project_versions WHERE project_id = ?", [project_id])[0]


def is_tagged(db: Database, artifact_id: str) -> bool:
    return db.fetch_one("SELECT count(*) FROM artifact_tags WHERE artifact_id = ?", [artifact_id])[0] > 0


def active_runs_resuming_from(db: Database, artifact_ids: list[str]) -> list[dict]:
    """Active runs that start from one of these checkpoints (they may still be reading its files)."""
    if not artifact_ids:
        return []
    return db.fetch_dicts(
        f"SELECT id, name, status FROM runs WHERE resumed_from IN ({_marks(artifact_ids)}) "
        f"AND status IN ({_marks(ACTIVE_RUN_STATUSES)}) ORDER BY created_at, id",
        [*artifact_ids, *ACTIVE_RUN_STATUSES],
    )


def active_runs(db: Database, project_id: str) -> list[dict]:
    return db.fetch_dicts(
        f"SELECT id, name, status FROM runs WHERE project_id = ? AND status IN ({_marks(ACTIVE_RUN_STATUSES)}) "
        "ORDER BY created_at, id",
        [project_id, *ACTIVE_RUN_STATUSES],
    )


def run_ids_of_project(db: Database, project_id: str) -> list[str]:
    return [
        row[0] for row in db.fetch_all("SELECT id FROM runs WHERE project_id = ? ORDER BY created_at, id", [project_id])
    ]


# Deleting rows; the caller has removed the files first


def delete_artifacts(db: Database, artifact_ids: list[str]) -> None:
    if not artifact_ids:
        return
    with db.writing(transaction=True) as cur:
        _delete_artifact_rows(cur, artifact_ids)


def _delete_artifact_rows(cur, artifact_ids: list[str]) -> None:
    cur.execute(f"DELETE FROM artifact_tags WHERE artifact_id IN ({_marks(artifact_ids)})", artifact_ids)
    cur.execute(f"DELETE FROM artifacts WHERE id IN ({_marks(artifact_ids)})", artifact_ids)


def _delete_run_rows(cur, run_ids: list[str]) -> None:
    if not run_ids:
        return
    marks = _marks(run_ids)
    cur.execute(
        f"DELETE FROM artifact_tags WHERE artifact_id IN (SELECT id FROM artifacts WHERE run_id IN ({marks}))", run_ids
    )
    for table in ("artifacts", "logs", "log_runs", "metrics", "metric_blocks", "ingest_batches", "gpu_leases"):
        cur.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", run_ids)
    cur.execute(
        f"UPDATE tokens SET revoked_at = ? WHERE run_id IN ({marks}) AND revoked_at IS NULL", [utc_now(), *run_ids]
    )
    cur.execute(f"DELETE FROM runs WHERE id IN ({marks})", run_ids)


def delete_runs(db: Database, run_ids: list[str]) -> None:
    """Runs with their logs, metrics, artifacts, tags and ingest records, in one transaction that no append to
    these runs overlaps."""
    with db.removing_runs(run_ids) as cur:
        _delete_run_rows(cur, run_ids)


PROJECT_TABLES = (
    "project_versions",
    "project_members",
    "retention_policies",
    "webhooks",
    "webhook_deliveries",
    "sweeps",
    "releases",
)


def delete_project(db: Database, project_id: str, run_ids: list[str]) -> None:
    """The project, its versions, members, retention policy, sweeps, releases and all its runs, in one transaction
    that no append to these runs overlaps."""
    with db.removing_runs(run_ids) as cur:
        _delete_run_rows(cur, run_ids)
        for table in ("sweep_journal", "sweep_trials"):
            cur.execute(
                f"DELETE FROM {table} WHERE sweep_id IN (SELECT id FROM sweeps WHERE project_id = ?)", [project_id]
            )
        for table in PROJECT_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE project_id = ?", [project_id])
        cur.execute("DELETE FROM projects WHERE id = ?", [project_id])
