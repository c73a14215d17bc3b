"""Copy the whole store to a folder of Parquet files (DuckDB EXPORT DATABASE) and build a store from one.

A backup is written into a staging folder beside its target and renamed into place once its manifest is
written, so a folder with the target's name is always complete; a marker beside the store names the staging
folder meanwhile, and opening the store removes what a killed backup left.

Restoring never runs SQL from the folder (EXPORT also writes schema.sql and load.sql, which a tampered folder
could turn into anything): the schema comes from the project's own migrations, and only the Parquet file of each
known table is read, checked against the manifest.
"""

import json
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ltm.store import migrations

if TYPE_CHECKING:
    from ltm.store.db import Database

MANIFEST = "ltm-backup.json"
PARTIAL = ".partial-"


class BackupRejected(Exception):
    """The folder is not a backup this version of ltm can restore; the message (Chinese) says why."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _literal(text: str) -> str:
    """EXPORT takes no bound parameters: quote the folder as an SQL string literal."""
    if "\x00" in text:
        raise ValueError("路径不能包含 NUL 字符")
    return "'" + text.replace("'", "''") + "'"


def _name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _tables(cur) -> list[str]:
    return [
        row[0]
        for row in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
            "ORDER BY table_name"
        ).fetchall()
    ]


def _table_counts(cur) -> dict[str, int]:
    return {table: cur.execute(f"SELECT count(*) FROM {_name(table)}").fetchone()[0] for table in _tables(cur)}


# Backup


def _marker(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".backup-in-progress")


def export_database(db: "Database", folder: Path) -> dict[str, int]:
    """Write every table into `folder` (missing, or an empty folder) with a manifest of the row counts and the
    schema version; returns the counts.

    One transaction covers the counts and the export, so appends arriving meanwhile are in neither; the write
    lock keeps run and project rows still for the duration."""
    staging = folder.with_name(f"{folder.name}{PARTIAL}{secrets.token_hex(4)}")
    marker = _marker(db.path)
    marker.write_text(str(staging), encoding="utf-8")
    try:
        staging.mkdir()
        with db.writing(transaction=True) as cur:
            counts = _table_counts(cur)
            version = cur.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            cur.execute(f"EXPORT DATABASE {_literal(str(staging))} (FORMAT PARQUET)")
        manifest = {"exported_at": _now().isoformat() + "Z", "schema_version": version, "tables": counts}
        (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        marker.unlink(missing_ok=True)
    return counts


def remove_partial(db_path: Path) -> None:
    """Remove the staging folder of a backup that its process did not live to finish."""
    marker = _marker(db_path)
    try:
        staging = Path(marker.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    if PARTIAL in staging.name:
        shutil.rmtree(staging, ignore_errors=True)
    marker.unlink(missing_ok=True)


def table_counts(db: "Database") -> dict[str, int]:
    with db.cursor() as cur:
        return _table_counts(cur)


# Restore


def read_manifest(folder: Path) -> dict:
    """The manifest `export_database` wrote, checked for shape and for a schema version this ltm knows."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupRejected(f"{folder} 不是备份目录：缺少 {MANIFEST}（请使用 ltm backup 生成的目录）")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupRejected(f"备份清单 {path} 无法读取：{exc}") from exc
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    tables = manifest.get("tables") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(tables, dict):
        raise BackupRejected(f"备份清单 {path} 格式不对：需要整数 schema_version 和各表行数 tables")
    if any(not isinstance(rows, int) or isinstance(rows, bool) or rows < 0 for rows in tables.values()):
        raise BackupRejected(f"备份清单 {path} 格式不对：tables 中的行数必须是非负整数")
    if not 1 <= version <= migrations.latest_version():
        raise BackupRejected(
            f"备份的结构版本为 {version}，当前 ltm 只认识 1 到 {migrations.latest_version()}，不能恢复"
        )
    return manifest


def import_database(db_path: Path, folder: Path, manifest: dict) -> None:
    """Create the store file `db_path` (which must not exist): the schema from the migrations up to the backup's
    version, then each table's rows from its Parquet file in `folder`. BackupRejected when the manifest's tables,
    a file's columns or its row count do not match."""
    version, expected = manifest["schema_version"], manifest["tables"]
    connection = duckdb.connect(str(db_path))
    try:
        migrations.apply(connection, _now(), up_to=version)
        tables = _tables(connection)
        unknown, missing = sorted(set(expected) - set(tables)), sorted(set(tables) - set(expected))
        problems = [f"未知的表 {'、'.join(unknown)}"] if unknown else []
        problems += [f"缺少表 {'、'.join(missing)}"] if missing else []
        if problems:
            raise BackupRejected(f"备份清单的表与结构版本 {version} 不符：{'；'.join(problems)}")
        connection.begin()
        connection.execute("DELETE FROM schema_version")
        for table in tables:
            _load(connection, folder, table, expected[table])
        _check_versions(connection, version)
        connection.commit()
        connection.execute("CHECKPOINT")
    finally:
        connection.close()


def _load(con, folder: Path, table: str, rows: int) -> None:
    path = folder / f"{table}.parquet"
    if path.is_symlink() or not path.is_file():
        raise BackupRejected(f"备份缺少表 {table} 的数据文件 {path.name}")
    columns = [
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
    ]
    found = [column[0] for column in con.execute("SELECT * FROM read_parquet(?) LIMIT 0", [str(path)]).description]
    if sorted(found) != sorted(columns):
        raise BackupRejected(f"表 {table} 的数据文件列为 {', '.join(found)}，应为 {', '.join(columns)}")
    stored = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]
    if stored != rows:
        raise BackupRejected(f"表 {table} 的数据文件有 {stored} 行，备份清单记录为 {rows} 行")
    listed = ", ".join(_name(column) for column in columns)
    con.execute(f"INSERT INTO {_name(table)} ({listed}) SELECT {listed} FROM read_parquet(?)", [str(path)])


def _check_versions(con, version: int) -> None:
    recorded = [row[0] for row in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
    applied = [number for number, _ in migrations.MIGRATIONS if number <= version]
    if recorded != applied:
        raise BackupRejected(f"备份的 schema_version 表记录的版本 {recorded} 与清单的结构版本 {version} 不符")
