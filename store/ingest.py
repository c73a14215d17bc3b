"""Append-only logs and metrics, inserted as Arrow tables; a batch id is stored once per run."""

import threading

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltm.store.db import Database, utc_now

BLOCK_STEPS = 128  # migration 6 fills metric_blocks with the same block size
_BLOCKS_OF_INCOMING = f"""
INSERT INTO metric_blocks
SELECT ?, name, step // {BLOCK_STEPS}, min(step), max(step), min(value), max(value), arg_max(value, step),
       arg_max(timestamp, step), count(*)
FROM incoming GROUP BY name, step // {BLOCK_STEPS}
"""


_RUN_LOCKS = [threading.Lock() for _ in range(64)]  # a run's batches take line numbers one after another


class _Duplicate(Exception):
    pass


def _claim_batch(cur, run_id: str, kind: str, batch_id: str, row_count: int) -> None:
    try:
        cur.execute("INSERT INTO ingest_batches VALUES (?, ?, ?, ?, ?)", [run_id, kind, batch_id, row_count, utc_now()])
    except duckdb.ConstraintException:
        raise _Duplicate from None


def append_logs(db: Database, run_id: str, batch_id: str, lines: pa.Table) -> bool:
    """Insert lines (timestamp, level, message) under `batch_id`; False when that batch was already stored.

    Lines get the run's next line numbers in time order; `log_runs` remembers whether every batch so far
    started no earlier than the previous one ended, which is when line numbers can serve pages directly.
    """
    lines = lines.sort_by("timestamp")
    first = db.reserve_log_seq(lines.num_rows)
    rows = lines.append_column("seq", pa.array(np.arange(first, first + lines.num_rows, dtype=np.int64)))
    try:
        with _RUN_LOCKS[hash(run_id) % len(_RUN_LOCKS)], db.transaction() as cur:
            _claim_batch(cur, run_id, "logs", batch_id, rows.num_rows)
            if rows.num_rows:
                state = cur.execute(
                    "SELECT lines, last_ts, in_order FROM log_runs WHERE run_id = ?", [run_id]
                ).fetchall()
                count, last_ts, in_order = state[0] if state else (0, None, True)
                bounds = pc.min_max(rows["timestamp"])
                earliest, latest = bounds["min"].as_py(), bounds["max"].as_py()
                in_order = in_order and (last_ts is None or earliest >= last_ts)
                rows = rows.append_column(
                    "line", pa.array(np.arange(count + 1, count + 1 + rows.num_rows, dtype=np.int64))
                )
                cur.register("incoming", rows)
                cur.execute("INSERT INTO logs SELECT ?, seq, timestamp, level, message, line FROM incoming", [run_id])
                cur.unregister("incoming")
                values = [count + rows.num_rows, max(latest, last_ts or latest), in_order, run_id]
                if state:
                    cur.execute("UPDATE log_runs SET lines = ?, last_ts = ?, in_order = ? WHERE run_id = ?", values)
                else:
                    cur.execute("INSERT INTO log_runs (lines, last_ts, in_order, run_id) VALUES (?, ?, ?, ?)", values)
    except (_Duplicate, duckdb.TransactionException):
        return False
    return True


def append_metrics(db: Database, run_id: str, batch_id: str, points: pa.Table) -> list[tuple] | None:
    """Insert points (name, step, value, timestamp) under `batch_id`.

    Returns each series' (name, step, value) at its largest step in this batch, or None for a stored batch id.
    """
    try:
        with db.transaction() as cur:
            _claim_batch(cur, run_id, "metrics", batch_id, points.num_rows)
            cur.register("incoming", points)
            cur.execute("INSERT INTO metrics SELECT ?, name, step, value, timestamp FROM incoming", [run_id])
            cur.execute(_BLOCKS_OF_INCOMING, [run_id])
            latest = cur.execute("SELECT name, max(step), arg_max(value, step) FROM incoming GROUP BY name").fetchall()
            cur.unregister("incoming")
    except (_Duplicate, duckdb.TransactionException):
        return None
    return latest
