"""Downsampled metric series: at most `max_points` buckets per series, each with min, max and last value.

A series with at least BLOCK_STEPS steps per bucket is read from `metric_blocks` (rows per 128-step block),
so 1M points cost some thousand rows; its buckets are then unions of whole blocks, placed by the block's start.
Shorter series are read point by point.
"""

from ltm.store.db import Database, from_db_time
from ltm.store.ingest import BLOCK_STEPS

_SERIES = """
SELECT name, min(first_step) AS lo, max(last_step) AS hi, sum(points)::BIGINT AS total
FROM metric_blocks WHERE run_id = ? {names} GROUP BY name ORDER BY name
"""

_FROM_POINTS = """
WITH r AS (SELECT * FROM (VALUES {ranges}) AS r(name, lo, hi))
SELECT m.name, {bucket} AS bucket, max(m.step),
       min(m.value), max(m.value), arg_max(m.value, m.step), arg_max(m.ts, m.step)
FROM metrics m JOIN r ON m.name = r.name
WHERE m.run_id = ?
GROUP BY m.name, bucket
ORDER BY m.name, bucket
"""

_FROM_BLOCKS = """
WITH r AS (SELECT * FROM (VALUES {ranges}) AS r(name, lo, hi)),
     b AS (SELECT name, block * {block_steps} AS step, last_step, min, max, last, last_ts FROM metric_blocks
           WHERE run_id = ? AND name IN ({marks}))
SELECT b.name, {bucket} AS bucket,
       max(b.last_step), min(b.min), max(b.max), arg_max(b.last, b.last_step), arg_max(b.last_ts, b.last_step)
FROM b JOIN r ON b.name = r.name
GROUP BY b.name, bucket
ORDER BY b.name, bucket
"""


def _bucket(table: str) -> str:
    """Bucket of a step (a block's start) in [lo, hi]; doubles cannot overflow, the clamps absorb rounding at 2**63
    and a first block that starts before lo."""
    step = f"greatest({table}.step, r.lo)"
    return f"least(floor(({step} - r.lo)::DOUBLE * ? / ((r.hi - r.lo)::DOUBLE + 1)), ? - 1)::BIGINT"


def downsample(db: Database, run_id: str, names: list[str] | None, max_points: int) -> list[dict]:
    params: list = [run_id]
    names_sql = ""
    if names:
        names_sql = f"AND name IN ({_marks(names)})"
        params.extend(names)
    stats = db.fetch_all(_SERIES.format(names=names_sql), params)
    series = {name: {"name": name, "total_points": total, "points": []} for name, _, _, total in stats}
    coarse = [
        (name, lo, hi)
        for name, lo, hi, total in stats
        if total > max_points and hi - lo + 1 >= BLOCK_STEPS * max_points
    ]
    fine = [(name, lo, hi) for name, lo, hi, _ in stats if (name, lo, hi) not in coarse]
    rows = []
    if fine:
        rows += db.fetch_all(
            _FROM_POINTS.format(ranges=_ranges(fine), bucket=_bucket("m")),
            [*_flat(fine), max_points, max_points, run_id],
        )
    if coarse:
        sql = _FROM_BLOCKS.format(
            ranges=_ranges(coarse), marks=_marks(coarse), bucket=_bucket("b"), block_steps=BLOCK_STEPS
        )
        rows += db.fetch_all(sql, [*_flat(coarse), run_id, *(name for name, _, _ in coarse), max_points, max_points])
    for name, _, step, low, high, last, ts in rows:
        series[name]["points"].append(
            {"step": step, "min": low, "max": high, "last": last, "timestamp": from_db_time(ts)}
        )
    return list(series.values())


def _marks(values: list) -> str:
    return ", ".join("?" for _ in values)


def _ranges(ranges: list[tuple]) -> str:
    return ", ".join("(?::VARCHAR, ?::BIGINT, ?::BIGINT)" for _ in ranges)


def _flat(ranges: list[tuple]) -> list:
    return [value for entry in ranges for value in entry]
