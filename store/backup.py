"""Copy the whole store to a folder of Parquet files (DuckDB EXPORT DATABASE) and back (IMPORT DATABASE)."""

import json
from pathlib import Path

import duckdb

from ltm.store.db import Database, utc_now

MANIFEST = "ltm-backup.json"


def _literal(text: str) -> str:
    """EXPORT and IMPORT take no bound parameters: quote the folder as an SQL string literal."""
    if "\x00" in text:
        raise ValueError("路径不能包含 NUL 字符")
    return "'" + text.replace("'", "''") + "'"


def _table_counts(cur) -> dict[str, int]:
    tables = [
        row[0]
        for row in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
            "ORDER BY table_name"
        ).fetchall()
    ]
    return {
        table: cur.execute(f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
        for table in tables
    }


def export_database(db: Database, folder: Path) -> dict[str, int]:
    """Write every table to `folder` plus a manifest of the exported row counts (checked on restore).

    One transaction covers the counts and the export, so appends arriving meanwhile are in neither;
    the write lock keeps run and project rows still for the duration."""
    with db.writing(transaction=True) as cur:
        counts = _table_counts(cur)
        version = cur.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        cur.execute(f"EXPORT DATABASE {_literal(str(folder))} (FORMAT PARQUET)")
    manifest = {"exported_at": utc_now().isoformat() + "Z", "schema_version": version, "tables": counts}
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return counts


def read_manifest(folder: Path) -> dict | None:
    """What `export_database` recorded about a backup folder; None for a plain DuckDB export."""
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def import_database(db_path: Path, folder: Path) -> None:
    """Create the store file `db_path` (which must not exist) from an exported folder."""
    connection = duckdb.connect(str(db_path))
    try:
        connection.execute(f"IMPORT DATABASE {_literal(str(folder))}")
        connection.execute("CHECKPOINT")
    finally:
        connection.close()


def table_counts(db: Database) -> dict[str, int]:
    with db.cursor() as cur:
        return _table_counts(cur)
