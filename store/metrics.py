from store.db import Database, from_db_time

_DOWNSAMPLE = """
WITH s AS (SELECT name, step, value, ts FROM metrics WHERE run_id = ? {names}),
     b AS (SELECT name, min(step) AS lo, max(step) AS hi, count(*) AS n FROM s GROUP BY name)
SELECT s.name, (s.step - b.lo)::HUGEINT * ? // ((b.hi - b.lo)::HUGEINT + 1) AS bucket, max(s.step) AS step,
       min(s.value) AS min, max(s.value) AS max, arg_max(s.value, s.step) AS last,
       arg_max(s.ts, s.step) AS timestamp, any_value(b.n) AS total_points
FROM s JOIN b USING (name)
GROUP BY s.name, bucket
ORDER BY s.name, bucket
"""


def downsample(db: Database, run_id: str, names: list[str] | None, max_points: int) -> list[dict]:
    """Per series at most `max_points` buckets over the step range, each with min, max and last value."""
    params: list = [run_id]
    names_sql = ""
    if names:
        names_sql = f"AND name IN ({', '.join('?' for _ in names)})"
        params.extend(names)
    params.append(max_points)
    series: dict[str, dict] = {}
    for name, _, step, low, high, last, ts, total in db.fetch_all(_DOWNSAMPLE.format(names=names_sql), params):
        entry = series.setdefault(name, {"name": name, "total_points": total, "points": []})
        entry["points"].append({"step": step, "min": low, "max": high, "last": last, "timestamp": from_db_time(ts)})
    return list(series.values())
