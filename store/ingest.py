"""Append-only logs and metrics, stored in Arrow batches; a batch id is stored once per run."""

import duckdb
import pyarrow as pa

from store.db import Database, utc_now


def _claim_batch(cur, run_id: str, kind: str, batch_id: str, row_count: int) -> bool:
    try:
        cur.execute("INSERT INTO ingest_batches VALUES (?, ?, ?, ?, ?)", [run_id, kind, batch_id, row_count, utc_now()])
    except duckdb.ConstraintException:
        return False
    return True


def _append(db: Database, table: str, kind: str, run_id: str, batch_id: str, rows: pa.Table, select: str) -> bool:
    """Insert `rows` under `batch_id`; False when that batch was already stored."""
    try:
        with db.transaction() as cur:
            if not _claim_batch(cur, run_id, kind, batch_id, rows.num_rows):
                raise _Duplicate
            cur.register("incoming", rows)
            cur.execute(f"INSERT INTO {table} {select}", [run_id])
            cur.unregister("incoming")
    except (_Duplicate, duckdb.TransactionException):
        return False
    return True


class _Duplicate(Exception):
    pass


def append_logs(db: Database, run_id: str, batch_id: str, ts: list, levels: list[str], messages: list[str]) -> bool:
    first = db.reserve_log_seq(len(ts))
    rows = pa.table({
        "seq": pa.array(range(first, first + len(ts)), pa.int64()),
        "ts": pa.array(ts, pa.timestamp("us")),
        "level": pa.array(levels, pa.string()),
        "message": pa.array(messages, pa.string()),
    })
    return _append(db, "logs", "logs", run_id, batch_id, rows,
                   "SELECT ?, seq, ts, level, message FROM incoming")


def append_metrics(db: Database, run_id: str, batch_id: str, names: list[str], steps: list[int], values: list[float],
                   ts: list) -> bool:
    rows = pa.table({
        "name": pa.array(names, pa.string()),
        "step": pa.array(steps, pa.int64()),
        "value": pa.array(values, pa.float64()),
        "ts": pa.array(ts, pa.timestamp("us")),
    })
    return _append(db, "metrics", "metrics", run_id, batch_id, rows,
                   "SELECT ?, name, step, value, ts FROM incoming")
