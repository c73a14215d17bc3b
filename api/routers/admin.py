"""Store administration: online backup and compaction (administrators only)."""

from pathlib import Path

import duckdb
from fastapi import APIRouter, Depends

from ltm.api.auth import Caller, require_role
from ltm.api.deps import CurrentSettings, Db, json_body_only
from ltm.api.errors import BODY_ERRORS, ErrorBody, Refusal, conflict, invalid_field, responses
from ltm.models import BackupRequest, BackupResult, CompactionResult
from ltm.store import auth as auth_store
from ltm.store import backup as backup_store
from ltm.store.compaction import CompactionFailed

router = APIRouter(tags=["数据生命周期"], dependencies=[Depends(json_body_only)])
_STORAGE_FAILED = {503: {"model": ErrorBody, "description": "工件文件删除失败或备份写入失败；未删除的记录保持不变"}}
_COMPACTION_FAILED = {503: {"model": ErrorBody, "description": "压缩失败；存储文件保持原样，未完成的副本已清理"}}


# Backup


def _backup_folder(target: str, root: Path) -> Path:
    folder = Path(target)
    if not folder.is_absolute():
        raise invalid_field("body", "target", "必须是 API 所在机器上的绝对路径")
    try:
        resolved, within = folder.resolve(), root.resolve()
        inside = resolved.is_relative_to(within) and resolved != within
    except (OSError, ValueError):
        inside = False
    if not inside:
        raise invalid_field("body", "target", f"必须位于备份根目录 {root} 之下（由 LTM_BACKUP_ROOT 设置）")
    try:
        is_file = folder.exists() and not folder.is_dir()
        occupied = folder.is_dir() and any(folder.iterdir())
    except (OSError, ValueError) as exc:
        raise invalid_field("body", "target", f"无法使用这个路径：{exc}") from exc
    if is_file:
        raise conflict(f"备份目标 {target} 已存在且不是目录")
    if occupied:
        raise conflict(f"备份目录 {target} 不为空，请换一个不存在或为空的目录，以免覆盖已有备份")
    return folder


def _export(db, folder: Path) -> dict[str, int]:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise invalid_field("body", "target", f"无法创建备份目录：{exc}") from exc
    try:
        return backup_store.export_database(db, folder)
    except (duckdb.Error, OSError) as exc:
        raise Refusal(503, f"备份写入失败，已清理未完成的备份：{exc}") from exc


@router.post(
    "/admin/backup",
    status_code=201,
    response_model=BackupResult,
    summary="在线备份存储（管理员）",
    responses={**responses(409, *BODY_ERRORS), **_STORAGE_FAILED},
)
def backup(db: Db, settings: CurrentSettings, caller: Caller, body: BackupRequest):
    require_role(caller, "admin", "备份存储")
    with db.writing():
        folder = _backup_folder(body.target, settings.backup_root_path)
        tables = _export(db, folder)
    written = [entry for entry in folder.rglob("*") if entry.is_file()]
    auth_store.record(db, caller.user, "备份存储", target=str(folder), details=f"{sum(tables.values())} 行")
    return {
        "folder": str(folder),
        "tables": tables,
        "files": len(written),
        "bytes": sum(entry.stat().st_size for entry in written),
        "schema_version": db.schema_version,
    }


# Compaction


@router.post(
    "/admin/compact",
    response_model=CompactionResult,
    summary="压缩存储，收回已删除数据占用的空间（管理员）",
    description="把整个存储重写到一个新文件再替换原文件：删除运行或项目后，DuckDB 文件不会自动变小。"
    "压缩期间其他请求会等待其完成；行数逐表核对一致后才替换原文件。",
    responses=_COMPACTION_FAILED,
)
def compact(db: Db, caller: Caller):
    require_role(caller, "admin", "压缩存储")
    try:
        result = db.compact()
    except (duckdb.Error, OSError, CompactionFailed) as exc:
        raise Refusal(503, f"压缩存储失败，存储保持原样：{exc}") from exc
    auth_store.record(
        db,
        caller.user,
        "压缩存储",
        target=str(db.path),
        details=f"{result['bytes_before']} → {result['bytes_after']} 字节",
    )
    return result
