"""Append-only logs and metrics, inserted as Arrow tables; a batch id is stored once per run."""

import duckdb
import numpy as np
import pyarrow as pa

from store.db import Database, utc_now


BLOCK_STEPS = 128  # migration 6 fills metric_blocks with the same block size
_BLOCKS_OF_INCOMING = f"""
INSERT INTO metric_blocks
SELECT ?, name, step // {BLOCK_STEPS}, min(step), max(step), min(value), max(value), arg_max(value, step),
       arg_max(timestamp, step), count(*)
FROM incoming GROUP BY name, step // {BLOCK_STEPS}
"""


class _Duplicate(Exception):
    pass


def _claim_batch(cur, run_id: str, kind: str, batch_id: str, row_count: int) -> None:
    try:
        cur.execute("INSERT INTO ingest_batches VALUES (?, ?, ?, ?, ?)", [run_id, kind, batch_id, row_count, utc_now()])
    except duckdb.ConstraintException:
        raise _Duplicate from None


def append_logs(db: Database, run_id: str, batch_id: str, lines: pa.Table) -> bool:
    """Insert lines (timestamp, level, message) under `batch_id`; False when that batch was already stored."""
    first = db.reserve_log_seq(lines.num_rows)
    rows = lines.append_column("seq", pa.array(np.arange(first, first + lines.num_rows, dtype=np.int64)))
    try:
        with db.transaction() as cur:
            _claim_batch(cur, run_id, "logs", batch_id, rows.num_rows)
            cur.register("incoming", rows)
            cur.execute("INSERT INTO logs SELECT ?, seq, timestamp, level, message FROM incoming", [run_id])
            cur.unregister("incoming")
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
