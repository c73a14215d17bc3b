"""Each project's webhooks, every delivery of a notification with its attempts, and the two questions about a run's
data that decide whether an event happened for the first time (a metric beyond a threshold, a non-finite value)."""

import json
from datetime import datetime

from ltm.store.db import Database, from_db_time

PENDING = "待发送"  # the API's DELIVERY_STATES; the store only needs to know which rows still wait
_TIMES = ("created_at", "next_attempt_at", "delivered_at")
_DELIVERY_COLUMNS = (
    "id",
    "project_id",
    "run_id",
    "url",
    "format",
    "event",
    "payload",
    "state",
    "attempts",
    "last_error",
    "created_at",
    "next_attempt_at",
    "delivered_at",
)


def get(db: Database, project_id: str) -> dict | None:
    rows = db.fetch_dicts("SELECT * FROM webhooks WHERE project_id = ?", [project_id])
    if not rows:
        return None
    row = rows[0]
    row["hooks"] = json.loads(row["hooks"])
    row["updated_at"] = from_db_time(row["updated_at"])
    return row


def put(db: Database, project_id: str, hooks: list[dict], user: str, at: datetime) -> None:
    with db.writing() as cur:
        cur.execute(
            "INSERT OR REPLACE INTO webhooks (project_id, hooks, updated_by, updated_at) VALUES (?, ?, ?, ?)",
            [project_id, json.dumps(hooks, ensure_ascii=False), user, at],
        )


def _decoded(row: dict) -> dict:
    row["payload"] = json.loads(row["payload"])
    for key in _TIMES:
        row[key] = from_db_time(row[key])
    return row


def add_deliveries(db: Database, deliveries: list[dict]) -> None:
    if not deliveries:
        return
    marks = ", ".join("?" for _ in _DELIVERY_COLUMNS)
    rows = [
        [json.dumps(d[c], ensure_ascii=False) if c == "payload" else d.get(c) for c in _DELIVERY_COLUMNS]
        for d in deliveries
    ]
    with db.writing(transaction=True) as cur:
        cur.executemany(f"INSERT INTO webhook_deliveries ({', '.join(_DELIVERY_COLUMNS)}) VALUES ({marks})", rows)


def due(db: Database, now: datetime, limit: int) -> list[dict]:
    """Deliveries still waiting whose next attempt is due, oldest first."""
    rows = db.fetch_dicts(
        "SELECT * FROM webhook_deliveries WHERE state = ? AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, created_at LIMIT ?",
        [PENDING, now, limit],
    )
    return [_decoded(row) for row in rows]


def next_due(db: Database) -> datetime | None:
    """When the earliest waiting delivery is due (naive UTC), or None when nothing waits."""
    return db.fetch_one("SELECT min(next_attempt_at) FROM webhook_deliveries WHERE state = ?", [PENDING])[0]


def record_attempt(db: Database, delivery_id: str, values: dict) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    with db.writing() as cur:
        cur.execute(f"UPDATE webhook_deliveries SET {assignments} WHERE id = ?", [*values.values(), delivery_id])


def recent(db: Database, project_id: str, limit: int) -> list[dict]:
    rows = db.fetch_dicts(
        "SELECT * FROM webhook_deliveries WHERE project_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        [project_id, limit],
    )
    return [_decoded(row) for row in rows]


def first_beyond(db: Database, run_id: str, metric: str, above: float | None, below: float | None) -> dict | None:
    """The run's earliest stored point of `metric` above `above` or below `below` (by time, then step)."""
    conditions, bounds = [], []
    if above is not None:
        conditions.append("value > ?")
        bounds.append(above)
    if below is not None:
        conditions.append("value < ?")
        bounds.append(below)
    rows = db.fetch_dicts(
        f"SELECT step, value, ts FROM metrics WHERE run_id = ? AND name = ? AND ({' OR '.join(conditions)}) "
        "ORDER BY ts, step LIMIT 1",
        [run_id, metric, *bounds],
    )
    return rows[0] if rows else None


def first_line(db: Database, run_id: str, level: str, prefix: str, suffix: str) -> datetime | None:
    """When the run's earliest stored log line of `level` starting with `prefix` and ending with `suffix` came."""
    return db.fetch_one(
        "SELECT min(ts) FROM logs WHERE run_id = ? AND level = ? AND starts_with(message, ?) AND ends_with(message, ?)",
        [run_id, level, prefix, suffix],
    )[0]
