"""Rewrite the store into a fresh DuckDB file: DuckDB does not shrink its file when rows are deleted.

The copy gets the same schema (COPY FROM DATABASE … (SCHEMA)) and every row. Logs and metrics are written run
by run, so each run's rows are contiguous and zone maps skip the other runs; every other table keeps its row
order (rowid breaks ties in some queries)."""

from pathlib import Path

COPY = "ltm_compacted"
LAYOUT = {"logs": "run_id, ts, seq", "metrics": "run_id, name, step"}


class CompactionFailed(Exception):
    """The copy did not match the store; the store file was left as it was. The message is Chinese."""


def staging_of(path: Path) -> Path:
    """Where the copy of store file `path` is written before it replaces the store."""
    return path.with_name(path.name + ".compacting")


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def footprint(path: Path) -> int:
    """Bytes the store takes on disk: the file and its WAL."""
    return sum(part.stat().st_size for part in (path, wal_of(path)) if part.exists())


def remove(path: Path) -> None:
    for part in (path, wal_of(path)):
        part.unlink(missing_ok=True)


def _name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """ATTACH takes no bound parameters."""
    if "\x00" in text:
        raise ValueError("路径不能包含 NUL 字符")
    return "'" + text.replace("'", "''") + "'"


def _tables(con, database: str) -> list[tuple[str, str, str]]:
    """(schema, table, CREATE statement) of every table of `database`."""
    return con.execute(
        "SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE database_name = ? "
        "ORDER BY schema_name, table_name",
        [database],
    ).fetchall()


def _counts(con, database: str) -> dict[str, int]:
    return {
        table if schema == "main" else f"{schema}.{table}": con.execute(
            f"SELECT count(*) FROM {_name(database)}.{_name(schema)}.{_name(table)}"
        ).fetchone()[0]
        for schema, table, _ in _tables(con, database)
    }


def _copy_rows(con, source: str, schema: str, table: str) -> None:
    order = LAYOUT.get(table, "rowid") if schema == "main" else "rowid"
    qualified = f"{_name(schema)}.{_name(table)}"
    con.execute(f"INSERT INTO {COPY}.{qualified} SELECT * FROM {_name(source)}.{qualified} ORDER BY {order}")


def _write_copy(con, source: str, target: Path) -> None:
    con.execute(f"ATTACH {_literal(str(target))} AS {COPY}")
    try:
        con.execute(f"COPY FROM DATABASE {_name(source)} TO {COPY} (SCHEMA)")
        for schema, table, _ in _tables(con, source):
            _copy_rows(con, source, schema, table)
        con.execute(f"CHECKPOINT {COPY}")
    finally:
        con.execute(f"DETACH {COPY}")


def _check_copy(con, source: str, target: Path) -> dict[str, int]:
    """Reopen the written file and compare its schema and row counts with the store's."""
    con.execute(f"ATTACH {_literal(str(target))} AS {COPY} (READ_ONLY)")
    try:
        differing = [] if _tables(con, source) == _tables(con, COPY) else ["表结构"]
        counts, copied = _counts(con, source), _counts(con, COPY)
        differing += [
            f"{table} 的行数（{rows} → {copied.get(table)}）"
            for table, rows in counts.items()
            if copied.get(table) != rows
        ]
    finally:
        con.execute(f"DETACH {COPY}")
    if differing:
        raise CompactionFailed(f"压缩后的副本与存储不一致：{'、'.join(differing)}")
    return counts


def copy_store(con, target: Path) -> dict[str, int]:
    """Write the whole database of connection `con` into the new file `target`, check it, return the row counts.

    Nothing else may use the connection meanwhile."""
    source = con.execute("SELECT current_database()").fetchone()[0]
    _write_copy(con, source, target)
    if wal_of(target).exists():
        raise CompactionFailed(f"压缩后的副本 {target} 仍有未合并的 WAL")
    return _check_copy(con, source, target)
