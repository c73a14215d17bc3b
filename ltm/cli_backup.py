"""`ltm backup` (asks the running API to export the store) and `ltm restore` (rebuilds a store, API stopped)."""

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import httpx

from ltm.client import ApiError, Client
from ltm.settings import Settings
from ltm.store import Database
from ltm.store import backup as backup_store

DEFAULT_API_URL = "http://127.0.0.1:8000"


class RestoreRefused(Exception):
    """Nothing was changed; the message (Chinese) says why."""


@dataclass(frozen=True)
class Restored:
    db_path: Path
    schema_version: int
    tables: dict[str, int]
    moved_aside: list[Path]


def _wal(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wal")


def _manifest(folder: Path) -> dict:
    try:
        return backup_store.read_manifest(folder)
    except backup_store.BackupRejected as exc:
        raise RestoreRefused(f"{exc}；未做任何修改") from exc


def _check_not_in_use(db_path: Path) -> None:
    try:
        duckdb.connect(str(db_path), read_only=True).close()
    except duckdb.IOException as exc:
        raise RestoreRefused(f"存储 {db_path} 正在被其他进程使用（API 是否仍在运行？请先停止 API）：{exc}") from exc


def _move_aside(paths: list[Path], stamp: str) -> list[Path]:
    moved = []
    for path in paths:
        target = path.with_name(path.name.replace("ltm.duckdb", f"ltm.duckdb.bak-{stamp}", 1))
        path.rename(target)
        moved.append(target)
    return moved


def _opened(db_path: Path) -> tuple[int, dict[str, int]]:
    """Open the restored file the way the API does, which applies the migrations newer than the backup."""
    db = Database(db_path)
    try:
        return db.schema_version, backup_store.table_counts(db)
    finally:
        db.close()


def _discard(db_path: Path) -> None:
    for path in (db_path, _wal(db_path)):
        path.unlink(missing_ok=True)


RESTORING = "ltm.duckdb.restoring-"


def restore(folder: Path, home: Path, force: bool = False) -> Restored:
    """Build `home`/ltm.duckdb from a backup folder; an existing store is refused unless `force`, which keeps
    it as ltm.duckdb.bak-<timestamp>. The new store is built beside it (schema from the migrations, rows from the
    folder's Parquet files checked against its manifest) and only moved into place once it opens."""
    folder = folder.expanduser().resolve()
    manifest = _manifest(folder)
    db_path = home / "ltm.duckdb"
    existing = [path for path in (db_path, _wal(db_path)) if path.exists()]
    if existing and not force:
        raise RestoreRefused(f"{db_path} 已存在，未做任何修改；确认要替换现有存储请加 --force（旧文件会改名保留）")
    if db_path.exists():
        _check_not_in_use(db_path)
    home.mkdir(parents=True, exist_ok=True)
    for leftover in home.glob(RESTORING + "*"):  # of a restore killed midway; the store is not in use
        leftover.unlink(missing_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    staging = home / f"{RESTORING}{stamp}"
    try:
        backup_store.import_database(staging, folder, manifest)
        version, tables = _opened(staging)
    except (duckdb.Error, OSError, ValueError, backup_store.BackupRejected) as exc:
        _discard(staging)
        raise RestoreRefused(f"从 {folder} 导入失败，未做任何修改：{exc}") from exc
    moved = _move_aside(existing, stamp)
    staging.rename(db_path)
    return Restored(db_path, version, tables, moved)


# Command line


def call_api(doing: str, call) -> tuple[dict | None, int]:
    """`call(client)` against the running API (LTM_API_URL, token LTM_TOKEN): (answer, 0), or (None, exit code)
    once the reason has been printed."""
    settings = Settings()
    url = settings.api_url or DEFAULT_API_URL
    try:
        with Client(url, token=settings.token) as client:
            return call(client), 0
    except ApiError as exc:
        print(f"{doing}失败：{exc.detail}", file=sys.stderr)
        return None, 2
    except httpx.HTTPError as exc:
        print(f"无法连接 API {url}（API 是否在运行？可用 LTM_API_URL 指定地址）：{exc}", file=sys.stderr)
        return None, 1


def backup_command(args: argparse.Namespace) -> int:
    target = Path(args.folder).expanduser().resolve()
    result, code = call_api("备份", lambda client: client.backup(target))
    if result is None:
        return code
    rows = sum(result.tables.values())
    print(
        f"已备份到 {result.folder}：{len(result.tables)} 张表，共 {rows} 行，"
        f"{result.files} 个文件，{result.bytes} 字节（结构版本 {result.schema_version}）"
    )
    print(json.dumps(result.tables, ensure_ascii=False))
    return 0


def restore_command(args: argparse.Namespace) -> int:
    home = Path(args.home) if args.home else Settings().home
    try:
        restored = restore(Path(args.folder), home, force=args.force)
    except RestoreRefused as exc:
        print(f"恢复失败：{exc}", file=sys.stderr)
        return 2
    if restored.moved_aside:
        print(f"原有存储已改名保留为 {'、'.join(str(path) for path in restored.moved_aside)}")
    print(
        f"已恢复到 {restored.db_path}：{len(restored.tables)} 张表，共 {sum(restored.tables.values())} 行"
        f"（结构版本 {restored.schema_version}）"
    )
    return 0


def add_commands(commands) -> None:
    """Register `ltm backup` and `ltm restore` on the CLI's subparsers."""
    backup = commands.add_parser("backup", help="在线备份存储（通过运行中的 API，LTM_API_URL）")
    backup.add_argument("folder", help="备份目录：必须不存在或为空")
    backup.set_defaults(handler=backup_command)
    restore_parser = commands.add_parser("restore", help="从备份目录恢复存储（须先停止 API）")
    restore_parser.add_argument("folder", help="ltm backup 生成的备份目录")
    restore_parser.add_argument("--home", help="数据目录（默认 $LTM_HOME 或 ./.ltm）")
    restore_parser.add_argument(
        "--force", action="store_true", help="替换已有存储（旧文件改名为 ltm.duckdb.bak-<时间>）"
    )
    restore_parser.set_defaults(handler=restore_command)
