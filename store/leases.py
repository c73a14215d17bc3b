"""GPU leases: which run holds which device. The primary key on `gpu_leases.device_id` keeps two runs off one
device whatever the callers do; a run's `devices`, `gpu_host`, `leased_at` and `released_at` keep the history."""

import json
from datetime import datetime

from ltm.store.db import Database, utc_now
from ltm.vocabulary import RunStatus

QUEUED = RunStatus.QUEUED.value
TERMINAL = [status.value for status in RunStatus if status.is_terminal]


def inventory_declared(db: Database) -> bool:
    """Whether any host has registered a device: only then does ltm hold GPU runs for devices."""
    return db.fetch_one("SELECT count(*) FROM gpu_devices")[0] > 0


def waiting_runs(db: Database) -> list[dict]:
    """Queued runs that were never handed over and hold no lease, highest priority first, then oldest; the caller
    keeps those that ask for GPUs."""
    rows = db.fetch_dicts(
        "SELECT id, name, project_id, resources, priority, created_at FROM runs r "
        "WHERE status = ? AND flow_run_id IS NULL AND NOT EXISTS (SELECT 1 FROM gpu_leases l WHERE l.run_id = r.id) "
        "ORDER BY coalesce(priority, 0) DESC, created_at, id",
        [QUEUED],
    )
    for row in rows:
        row["resources"] = json.loads(row["resources"])
    return rows


def devices(db: Database) -> list[dict]:
    """Every registered device with its host's work queue and last report (store time, like `utc_now`), and the run
    leasing it (or None)."""
    return db.fetch_dicts(
        'SELECT d.id, d.host, d.idx AS "index", d.model, d.memory_mb, h.work_queue, h.last_seen_at, '
        "l.run_id AS holder, r.project_id AS holder_project, r.name AS holder_name "
        "FROM gpu_devices d JOIN gpu_hosts h ON h.name = d.host "
        "LEFT JOIN gpu_leases l ON l.device_id = d.id LEFT JOIN runs r ON r.id = l.run_id ORDER BY d.host, d.idx"
    )


def lease(db: Database, grants: list[tuple[str, str, list[str]]]) -> list[str]:
    """Lease each grant's devices (run id, host, device ids) to its run, in one transaction stamped when it runs,
    so a lease never starts before the release that freed its devices; returns the runs leased. A run that no
    longer waits, or whose devices are taken, is skipped."""
    leased = []
    with db.writing(transaction=True) as cur:
        now = utc_now()
        for run_id, host, device_ids in grants:
            busy = cur.execute(
                "SELECT count(*) FROM gpu_leases WHERE list_contains(?, device_id) OR run_id = ?", [device_ids, run_id]
            ).fetchone()[0]
            waiting = cur.execute(
                "SELECT count(*) FROM runs WHERE id = ? AND status = ? AND flow_run_id IS NULL", [run_id, QUEUED]
            ).fetchone()[0]
            if busy or not waiting:
                continue
            for device_id in device_ids:
                cur.execute("INSERT INTO gpu_leases VALUES (?, ?, ?, ?)", [device_id, run_id, host, now])
            cur.execute(
                "UPDATE runs SET devices = ?, gpu_host = ?, leased_at = ?, released_at = NULL, updated_at = ? "
                "WHERE id = ?",
                [json.dumps(device_ids), host, now, now, run_id],
            )
            leased.append(run_id)
    return leased


def unlease(db: Database, run_id: str) -> None:
    """Take back a lease whose run could not be handed over: the run waits again as if never leased."""
    with db.writing(transaction=True) as cur:
        cur.execute("DELETE FROM gpu_leases WHERE run_id = ?", [run_id])
        cur.execute(
            "UPDATE runs SET devices = '[]', gpu_host = NULL, leased_at = NULL, released_at = NULL WHERE id = ?",
            [run_id],
        )


def release(db: Database, run_ids: list[str], now: datetime) -> None:
    """Free the devices of runs that ended; their `devices` stay as the record of what they ran on."""
    if not run_ids:
        return
    with db.writing(transaction=True) as cur:
        cur.execute("DELETE FROM gpu_leases WHERE list_contains(?, run_id)", [run_ids])
        cur.execute(
            "UPDATE runs SET released_at = ? WHERE list_contains(?, id) AND leased_at IS NOT NULL "
            "AND released_at IS NULL",
            [now, run_ids],
        )


def stale(db: Database) -> list[str]:
    """Runs holding leases they should not: the run ended or was deleted, or a leased device is no longer
    registered (its host reported without it)."""
    rows = db.fetch_all(
        "SELECT DISTINCT l.run_id FROM gpu_leases l LEFT JOIN runs r ON r.id = l.run_id "
        f"WHERE r.id IS NULL OR r.status IN ({', '.join('?' for _ in TERMINAL)}) "
        "OR l.device_id NOT IN (SELECT id FROM gpu_devices) ORDER BY 1",
        TERMINAL,
    )
    return [row[0] for row in rows]


def placement(db: Database, run_id: str) -> tuple[str | None, list[tuple[str, int]]]:
    """Where a leased run must train: its host's work queue and its devices as (id, CUDA index), by index."""
    rows = db.fetch_all(
        "SELECT h.work_queue, d.id, d.idx FROM gpu_leases l JOIN gpu_devices d ON d.id = l.device_id "
        "JOIN gpu_hosts h ON h.name = l.host WHERE l.run_id = ? ORDER BY d.idx",
        [run_id],
    )
    return (rows[0][0] if rows else None), [(row[1], row[2]) for row in rows]


def usage(db: Database, since: datetime | None, until: datetime, waiting_ids: list[str]) -> list[dict]:
    """Runs that held devices at some time after `since` (or are in `waiting_ids`), with their project's name
    and the mean utilisation of their device series."""
    return db.fetch_dicts(
        "SELECT r.id, r.project_id, p.name AS project_name, r.created_by, r.resources, r.devices, r.created_at, "
        "r.leased_at, r.released_at, u.utilization FROM runs r JOIN projects p ON p.id = r.project_id "
        "LEFT JOIN (SELECT run_id, avg(value) AS utilization FROM metrics WHERE name LIKE 'gpu/%/utilization' "
        "           AND run_id IN (SELECT id FROM runs WHERE leased_at IS NOT NULL) GROUP BY run_id) u "
        "ON u.run_id = r.id "
        "WHERE (r.leased_at IS NOT NULL AND r.leased_at <= ? "
        "       AND coalesce(r.released_at, ?) >= coalesce(?, r.leased_at)) "
        "OR list_contains(?, r.id) ORDER BY r.created_at, r.id",
        [until, until, since, waiting_ids],
    )
