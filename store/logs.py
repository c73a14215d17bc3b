from datetime import datetime

from ltm.store.db import Database, from_db_time, to_db_time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _filters(
    run_id: str, start: datetime | None, end: datetime | None, min_level: str | None, query: str | None
) -> tuple[str, list]:
    sql, params = "run_id = ?", [run_id]
    if start is not None:
        sql += " AND ts >= ?"
        params.append(to_db_time(start))
    if end is not None:
        sql += " AND ts < ?"
        params.append(to_db_time(end))
    if min_level is not None:
        allowed = LEVELS[LEVELS.index(min_level) :]
        sql += f" AND level IN ({', '.join('?' for _ in allowed)})"
        params.extend(allowed)
    if query:
        sql += " AND strpos(lower(message), lower(?)) > 0"
        params.append(query)
    return sql, params


def page(
    db: Database,
    run_id: str,
    offset: int,
    limit: int,
    start: datetime | None = None,
    end: datetime | None = None,
    min_level: str | None = None,
    query: str | None = None,
    newest_first: bool = False,
) -> tuple[int, list[dict]]:
    """One page of the run's lines in time order, or with `newest_first` in reverse (page 1 = the latest lines)."""
    if min_level is None and not query:
        state = db.fetch_one("SELECT lines, in_order FROM log_runs WHERE run_id = ?", [run_id])
        if state is None:
            return 0, []
        if state[1]:
            return _page_by_line(db, run_id, state[0], offset, limit, start, end, newest_first)
    where, params = _filters(run_id, start, end, min_level, query)
    total = db.fetch_one(f"SELECT count(*) FROM logs WHERE {where}", params)[0]
    order = "ts DESC, seq DESC" if newest_first else "ts, seq"
    rows = db.fetch_dicts(
        f"SELECT ts AS timestamp, level, message FROM logs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return total, _with_utc(rows)


def _page_by_line(
    db: Database,
    run_id: str,
    lines: int,
    offset: int,
    limit: int,
    start: datetime | None,
    end: datetime | None,
    newest_first: bool,
) -> tuple[int, list[dict]]:
    """Lines in time order: a time window is one range of line numbers, and a page a slice of it."""
    first, last = 1, lines
    if start is not None or end is not None:
        where, params = _filters(run_id, start, end, None, None)
        first, last = db.fetch_one(f"SELECT min(line), max(line) FROM logs WHERE {where}", params)
        if first is None:
            return 0, []
    total = last - first + 1
    if newest_first:
        low, high = max(last - offset - limit + 1, first), last - offset
    else:
        low, high = first + offset, min(first + offset + limit - 1, last)
    if low > high:
        return total, []
    rows = db.fetch_dicts(
        "SELECT ts AS timestamp, level, message FROM logs WHERE run_id = ? AND line BETWEEN ? AND ? "
        f"ORDER BY line{' DESC' if newest_first else ''}",
        [run_id, low, high],
    )
    return total, _with_utc(rows)


def _with_utc(rows: list[dict]) -> list[dict]:
    for row in rows:
        row["timestamp"] = from_db_time(row["timestamp"])
    return rows
