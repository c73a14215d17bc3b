from datetime import datetime

from store.db import Database, from_db_time, to_db_time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _filters(run_id: str, start: datetime | None, end: datetime | None, min_level: str | None,
             query: str | None) -> tuple[str, list]:
    sql, params = "run_id = ?", [run_id]
    if start is not None:
        sql += " AND ts >= ?"
        params.append(to_db_time(start))
    if end is not None:
        sql += " AND ts < ?"
        params.append(to_db_time(end))
    if min_level is not None:
        allowed = LEVELS[LEVELS.index(min_level):]
        sql += f" AND level IN ({', '.join('?' for _ in allowed)})"
        params.extend(allowed)
    if query:
        sql += " AND strpos(lower(message), lower(?)) > 0"
        params.append(query)
    return sql, params


def page(db: Database, run_id: str, offset: int, limit: int, start: datetime | None = None,
         end: datetime | None = None, min_level: str | None = None, query: str | None = None) -> tuple[int, list[dict]]:
    where, params = _filters(run_id, start, end, min_level, query)
    total = db.fetch_one(f"SELECT count(*) FROM logs WHERE {where}", params)[0]
    rows = db.fetch_dicts(
        f"SELECT ts AS timestamp, level, message FROM logs WHERE {where} ORDER BY ts, seq LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    for row in rows:
        row["timestamp"] = from_db_time(row["timestamp"])
    return total, rows
