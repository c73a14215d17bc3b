"""Append-only logs and metrics, inserted as Arrow tables. A batch id is stored once per run and kind, with a digest
of the batch's content: sending the same batch again is recognised, reusing its id for other content is refused."""

import hashlib

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


class UnknownRun(Exception):
    """The run is gone: it was deleted while the batch was on its way. Nothing was stored."""


class BatchConflict(Exception):
    """The batch id was stored before with other content. Nothing was stored."""


class _Duplicate(Exception):
    pass


def digest(table: pa.Table) -> str:
    """Of a batch's content: the same whichever body (JSON or Arrow, however chunked) carried it."""
    table = table.combine_chunks().replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.blake2b(sink.getvalue(), digest_size=16).hexdigest()


def _claim_batch(cur, run_id: str, kind: str, batch_id: str, row_count: int, content: str) -> None:
    if not cur.execute("SELECT count(*) FROM runs WHERE id = ?", [run_id]).fetchone()[0]:
        raise UnknownRun(run_id)
    key = [run_id, kind, batch_id]
    stored = cur.execute(
        "SELECT digest FROM ingest_batches WHERE run_id = ? AND kind = ? AND batch_id = ?", key
    ).fetchall()
    if stored:
        if stored[0][0] not in (None, content):  # a batch stored before digests were kept matches any content
            raise BatchConflict(batch_id)
        raise _Duplicate
    cur.execute(
        "INSERT INTO ingest_batches (run_id, kind, batch_id, row_count, received_at, digest) VALUES (?, ?, ?, ?, ?, ?)",
        [*key, row_count, utc_now(), content],
    )


def append_logs(db: Database, run_id: str, batch_id: str, lines: pa.Table) -> bool:
    """Insert lines (timestamp, level, message) under `batch_id`; False when that batch was already stored.

    Lines get the run's next line numbers in time order; `log_runs` remembers whether every batch so far
    started no earlier than the previous one ended, which is when line numbers can serve pages directly.
    Raises UnknownRun or BatchConflict.
    """
    content = digest(lines)
    lines = lines.sort_by("timestamp")
    first = db.reserve_log_seq(lines.num_rows)
    rows = lines.append_column("seq", pa.array(np.arange(first, first + lines.num_rows, dtype=np.int64)))
    try:
        with db.appending(run_id) as cur:
            _claim_batch(cur, run_id, "logs", batch_id, rows.num_rows, content)
            if rows.num_rows:
                _insert_lines(cur, run_id, rows)
    except _Duplicate:
        return False
    return True


def _insert_lines(cur, run_id: str, rows: pa.Table) -> None:
    state = cur.execute("SELECT lines, last_ts, in_order FROM log_runs WHERE run_id = ?", [run_id]).fetchall()
    count, last_ts, in_order = state[0] if state else (0, None, True)
    bounds = pc.min_max(rows["timestamp"])
    earliest, latest = bounds["min"].as_py(), bounds["max"].as_py()
    in_order = in_order and (last_ts is None or earliest >= last_ts)
    rows = rows.append_column("line", pa.array(np.arange(count + 1, count + 1 + rows.num_rows, dtype=np.int64)))
    cur.register("incoming", rows)
    cur.execute("INSERT INTO logs SELECT ?, seq, timestamp, level, message, line FROM incoming", [run_id])
    cur.unregister("incoming")
    values = [count + rows.num_rows, max(latest, last_ts or latest), in_order, run_id]
    if state:
        cur.execute("UPDATE log_runs SET lines = ?, last_ts = ?, in_order = ? WHERE run_id = ?", values)
    else:
        cur.execute("INSERT INTO log_runs (lines, last_ts, in_order, run_id) VALUES (?, ?, ?, ?)", values)


def append_metrics(db: Database, run_id: str, batch_id: str, points: pa.Table) -> list[tuple] | None:
    """Insert points (name, step, value, timestamp) under `batch_id`.

    Returns each series' (name, step, value) at its largest step in this batch, or None for a stored batch id.
    Raises UnknownRun or BatchConflict.
    """
    content = digest(points)
    try:
        with db.appending(run_id) as cur:
            _claim_batch(cur, run_id, "metrics", batch_id, points.num_rows, content)
            cur.register("incoming", points)
            cur.execute("INSERT INTO metrics SELECT ?, name, step, value, timestamp FROM incoming", [run_id])
            cur.execute(_BLOCKS_OF_INCOMING, [run_id])
            latest = cur.execute("SELECT name, max(step), arg_max(value, step) FROM incoming GROUP BY name").fetchall()
            cur.unregister("incoming")
    except _Duplicate:
        return None
    return latest
