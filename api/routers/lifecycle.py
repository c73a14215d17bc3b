"""Data lifecycle: checkpoint retention, deleting artifacts, runs and projects (preview first), store backup
and compaction.

Deleting always removes files before rows: a failed file delete leaves its row, so no record silently points
to a missing file. Only files inside the artifact's own run folder (<artifact root>/<project>/<run>/) are ever
deleted, so a stray registered path cannot take other runs' files with it."""

import posixpath
import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated

import duckdb
from fastapi import APIRouter, Depends, Query
from fsspec.core import url_to_fs
from pydantic import BaseModel, Field

from ltm.api.auth import Actor, Caller, require_owner, require_role
from ltm.api.deps import CurrentSettings, Db, ProjectRow, RunRow, json_body_only
from ltm.api.errors import BODY_ERRORS, ApiError, ErrorBody, conflict, invalid_field, not_found, responses
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.api.paths import within_root
from ltm.models import ArtifactType, Contract, RunStatus
from ltm.store import auth as audit_store
from ltm.store import backup as backup_store
from ltm.store import lifecycle as lifecycle_store
from ltm.store import runs as run_store
from ltm.store.compaction import CompactionFailed

router = APIRouter(tags=["数据生命周期"], dependencies=[Depends(json_body_only)])
PROJECT = "/projects/{project_id}"
RUN = PROJECT + "/runs/{run_id}"
DryRun = Annotated[bool, Query(description="true（默认）只预览将删除的内容，不做任何修改；false 才真正删除")]
_STORAGE_FAILED = {503: {"model": ErrorBody, "description": "工件文件删除失败或备份写入失败；未删除的记录保持不变"}}
_COMPACTION_FAILED = {503: {"model": ErrorBody, "description": "压缩失败；存储文件保持原样，未完成的副本已清理"}}


class RetentionPolicy(BaseModel):
    project_id: str
    keep_last: int | None = Field(description="每个运行保留步数最新的检查点个数；null 表示全部保留")
    updated_at: datetime | None = Field(None, description="策略最近一次修改的时间；从未设置时为 null")


class RetentionUpdate(Contract):
    keep_last: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        description="每个运行保留步数最新的检查点个数（1–1000）；null 表示全部保留。带标签的检查点始终保留")


class ArtifactItem(BaseModel):
    artifact_id: str
    run_id: str
    type: ArtifactType
    name: str
    path: str
    step: int | None = None
    size_bytes: int | None = None
    tags: list[str] = Field(default_factory=list, description="检查点带有的标签（候选/发布/归档）")


class RetentionPreview(BaseModel):
    project_id: str
    keep_last: int | None
    items: list[ArtifactItem] = Field(description="按策略将删除的检查点（只含已结束运行中、未打标签的检查点）")
    count: int
    total_bytes: int


class RunItem(BaseModel):
    id: str
    name: str
    status: RunStatus


class ArtifactDeletion(BaseModel):
    dry_run: bool
    deleted: bool
    artifact: ArtifactItem


class DeletionReport(BaseModel):
    dry_run: bool = Field(description="true 表示只是预览，什么都没有删除")
    deleted: bool = Field(description="true 表示已经删除")
    project_id: str
    runs: list[RunItem]
    artifacts: list[ArtifactItem]
    artifact_count: int
    artifact_bytes: int = Field(description="工件登记的大小之和（字节）")
    log_lines: int
    metric_points: int
    project_versions: int = Field(0, description="删除项目时一并删除的项目版本数")
    notes: list[str] = Field(default_factory=list, description="不影响结果的提示，例如未能清理的空目录")


class BackupRequest(Contract):
    target: Annotated[str, Field(min_length=1, max_length=4096,
                                 description="API 所在机器上、备份根目录（LTM_BACKUP_ROOT，默认 <LTM_HOME>/backups）之下"
                                             "的备份目录（绝对路径）；必须不存在或为空")]


class BackupResult(BaseModel):
    folder: str
    tables: dict[str, int] = Field(description="每张表导出的行数")
    files: int
    bytes: int
    schema_version: int


class CompactionResult(BaseModel):
    bytes_before: int = Field(description="压缩前存储文件（含 WAL）的字节数")
    bytes_after: int = Field(description="压缩后存储文件的字节数")
    tables: dict[str, int] = Field(description="每张表的行数（压缩前后一致，已核对）")
    seconds: float = Field(description="用时（秒），含等待进行中的请求结束的时间")


# Artifact files


class ArtifactFiles:
    """Deletes artifact files and folders under the configured artifact root (fsspec)."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url

    def run_folder(self, project_id: str, run_id: str) -> str:
        """Where flows.artifact_io.ArtifactWriter puts a run's files."""
        return f"{self.root_url.rstrip('/')}/{project_id}/{run_id}"

    def inside_run_folder(self, path: str, project_id: str, run_id: str) -> bool:
        return within_root(path, self.run_folder(project_id, run_id))

    def remove(self, path: str) -> None:
        """Remove a file or a folder (checkpoints are folders); one already gone counts as removed."""
        fs, inner = url_to_fs(path)
        try:
            fs.rm(inner, recursive=True)
        except FileNotFoundError:
            pass

    def remove_folder(self, *parts: str) -> list[str]:
        """Clear what is left of a project's or run's folder (flows.artifact_io layout: root/project/run)."""
        try:
            fs, root = url_to_fs(self.root_url)
            folder = posixpath.join(root, *parts)
            if fs.exists(folder):
                fs.rm(folder, recursive=True)
        except Exception as exc:  # the rows are gone either way; report what could not be tidied
            return [f"未能清理目录 {'/'.join(parts)}：{exc}"]
        return []


def _remove_all(files: ArtifactFiles, artifacts: list[dict]) -> tuple[list[str], list[str]]:
    """Remove each artifact's files; returns the ids removed and a message per failure."""
    removed, failures = [], []
    for artifact in artifacts:
        try:
            files.remove(artifact["path"])
        except Exception as exc:  # any fsspec backend error: keep the row, name the artifact
            failures.append(f"{artifact['artifact_id']}（{artifact['path']}）：{exc}")
        else:
            removed.append(artifact["artifact_id"])
    return removed, failures


def _refuse_outside_run_folder(files: ArtifactFiles, project_id: str, artifacts: list[dict]) -> None:
    outside = [a for a in artifacts if not files.inside_run_folder(a["path"], project_id, a["run_id"])]
    if outside:
        shown = "、".join(f"{a['artifact_id']}（{a['path']}）" for a in outside[:5])
        raise conflict(f"工件 {shown} 的文件不在所属运行的目录 {files.run_folder(project_id, '<运行 ID>')} 之下，"
                       "为免误删其他数据，不能删除")


def _storage_failed(failures: list[str], removed: list[str]) -> ApiError:
    done = f"；已删除文件的 {len(removed)} 个工件记录已一并删除" if removed else ""
    return ApiError(503, f"删除工件文件失败，未删除的记录保持不变：{'；'.join(failures[:5])}{done}")


# Shapes

_ITEM_KEYS = ("run_id", "type", "name", "path", "step", "size_bytes", "tags")


def _item(artifact: dict) -> dict:
    return {"artifact_id": artifact["id"], **{key: artifact[key] for key in _ITEM_KEYS}}


def _bytes(items: list[dict]) -> int:
    return sum(item["size_bytes"] or 0 for item in items)


def _described(runs: list[dict]) -> str:
    return "、".join(f"{run['name']}（{run['id']}，{run['status']}）" for run in runs[:10])


def _report(db, project_id: str, runs: list[dict], dry_run: bool, versions: int = 0) -> dict:
    run_ids = [run["id"] for run in runs]
    artifacts = [_item(a) for a in lifecycle_store.artifacts_of_runs(db, run_ids)]
    return {"dry_run": dry_run, "deleted": False, "project_id": project_id,
            "runs": [{k: run[k] for k in ("id", "name", "status")} for run in runs],
            "artifacts": artifacts, "artifact_count": len(artifacts), "artifact_bytes": _bytes(artifacts),
            **lifecycle_store.footprint(db, run_ids), "project_versions": versions, "notes": []}


def _audit(db, caller: Actor, action: str, project_id: str, run_id: str | None, details: str) -> None:
    audit_store.record(db, caller.user, action, project_id, run_id, details=details)


# Retention


@router.get(PROJECT + "/retention", response_model=RetentionPolicy, summary="检查点保留策略",
            responses=responses(404, 422))
def get_retention(db: Db, caller: Caller, project: ProjectRow):
    return lifecycle_store.get_policy(db, project["id"])


@router.put(PROJECT + "/retention", response_model=RetentionPolicy, summary="设置检查点保留策略（负责人或管理员）",
            responses=responses(404, *BODY_ERRORS))
def set_retention(db: Db, caller: Caller, project: ProjectRow, body: RetentionUpdate):
    require_owner(caller, project, "设置检查点保留策略")
    with db.write_lock:
        policy = lifecycle_store.set_policy(db, project["id"], body.keep_last)
    kept = "全部保留" if body.keep_last is None else f"每个运行保留最新 {body.keep_last} 个"
    _audit(db, caller, "设置保留策略", project["id"], None, kept)
    return policy


@router.get(PROJECT + "/retention/preview", response_model=RetentionPreview, summary="预览保留策略将删除的检查点",
            responses=responses(404, 422))
def preview_retention(db: Db, caller: Caller, project: ProjectRow):
    keep_last = lifecycle_store.get_policy(db, project["id"])["keep_last"]
    found = [] if keep_last is None else lifecycle_store.retention_candidates(db, project["id"], keep_last)
    items = [_item(artifact) for artifact in found]
    return {"project_id": project["id"], "keep_last": keep_last, "items": items, "count": len(items),
            "total_bytes": _bytes(items)}


# One artifact


def _artifact_of(db, run: dict, artifact_id: str) -> dict:
    rows = (lifecycle_store.artifacts_of_runs(db, [run["id"]])
            if well_formed(artifact_id, *ARTIFACT_KINDS) else [])
    artifact = next((row for row in rows if row["id"] == artifact_id), None)
    if artifact is None:
        raise not_found(f"运行 {run['id']} 的工件", artifact_id)
    return _item(artifact)


def _refuse_artifact_delete(db, run_id: str, artifact: dict) -> None:
    run = run_store.get(db, run_id)
    if RunStatus(run["status"]).is_active:
        raise conflict(f"运行 {run['name']}（{run_id}）仍在进行（{run['status']}），不能删除它的工件")
    if lifecycle_store.is_tagged(db, artifact["artifact_id"]):
        raise conflict(f"检查点 {artifact['artifact_id']} 带有标签（候选/发布/归档），带标签的检查点不能删除")
    resuming = lifecycle_store.active_runs_resuming_from(db, [artifact["artifact_id"]])
    if resuming:
        raise conflict(f"运行 {_described(resuming)} 正从检查点 {artifact['artifact_id']} 恢复训练，不能删除")


@router.delete(RUN + "/artifacts/{artifact_id}", response_model=ArtifactDeletion, summary="删除工件（先删文件再删记录）",
               responses={**responses(404, 409, 422), **_STORAGE_FAILED})
def delete_artifact(db: Db, settings: CurrentSettings, caller: Caller, project: ProjectRow, run: RunRow,
                    artifact_id: str, dry_run: DryRun = True):
    artifact = _artifact_of(db, run, artifact_id)
    files = ArtifactFiles(settings.artifact_root_url)
    _refuse_artifact_delete(db, run["id"], artifact)
    _refuse_outside_run_folder(files, project["id"], [artifact])
    if dry_run:
        return {"dry_run": True, "deleted": False, "artifact": artifact}
    require_owner(caller, project, "删除工件")
    removed, failures = _remove_all(files, [artifact])
    if failures:
        raise _storage_failed(failures, [])
    with db.write_lock:
        _refuse_artifact_delete(db, run["id"], artifact)
        lifecycle_store.delete_artifacts(db, removed)
    _audit(db, caller, "删除工件", project["id"], run["id"], f"{artifact_id}（{artifact['path']}）")
    return {"dry_run": False, "deleted": True, "artifact": artifact}


# Runs and projects


def _run_blockers(db, run_id: str) -> None:
    run = run_store.get(db, run_id)
    if RunStatus(run["status"]).is_active:
        raise conflict(f"运行 {_described([run])} 仍在进行，请先取消或等待其结束再删除")
    checkpoint_ids = [a["id"] for a in lifecycle_store.artifacts_of_runs(db, [run_id])]
    resuming = lifecycle_store.active_runs_resuming_from(db, checkpoint_ids)
    if resuming:
        raise conflict(f"运行 {_described(resuming)} 正从运行 {run_id} 的检查点恢复训练，请等其结束再删除")


def _project_blockers(db, project_id: str, planned_run_ids: list[str]) -> None:
    active = lifecycle_store.active_runs(db, project_id)
    if active:
        raise conflict(f"项目 {project_id} 还有进行中的运行：{_described(active)}，请先取消或等待其结束再删除")
    if lifecycle_store.run_ids_of_project(db, project_id) != planned_run_ids:
        raise conflict(f"项目 {project_id} 在删除过程中新增了运行，未删除项目，请重新预览后再删除")


def _refuse_new_artifacts(db, report: dict) -> None:
    now = {a["id"] for a in lifecycle_store.artifacts_of_runs(db, [run["id"] for run in report["runs"]])}
    if now != {a["artifact_id"] for a in report["artifacts"]}:
        raise conflict("删除过程中登记了新的工件，未删除运行，请重新预览后再删除")


def _delete_files_then_rows(db, files: ArtifactFiles, report: dict, recheck, delete_rows) -> None:
    """Files first; then, under the write lock and after `recheck`, the rows. A failure keeps every row
    whose files are still there, and drops only the rows of artifacts whose files are gone."""
    _refuse_outside_run_folder(files, report["project_id"], report["artifacts"])
    removed, failures = _remove_all(files, report["artifacts"])
    with db.write_lock:
        try:
            recheck()
            _refuse_new_artifacts(db, report)
        except ApiError:
            lifecycle_store.delete_artifacts(db, removed)
            raise
        if failures:
            lifecycle_store.delete_artifacts(db, removed)
            raise _storage_failed(failures, removed)
        delete_rows()


@router.delete(RUN, response_model=DeletionReport, summary="删除运行（默认只预览）",
               responses={**responses(404, 409, 422), **_STORAGE_FAILED})
def delete_run(db: Db, settings: CurrentSettings, caller: Caller, project: ProjectRow, run: RunRow,
               dry_run: DryRun = True):
    report = _report(db, project["id"], [run], dry_run)
    if dry_run:
        return report
    require_owner(caller, project, "删除运行")
    with db.write_lock:
        _run_blockers(db, run["id"])
    files = ArtifactFiles(settings.artifact_root_url)
    _delete_files_then_rows(db, files, report, lambda: _run_blockers(db, run["id"]),
                            lambda: lifecycle_store.delete_runs(db, [run["id"]]))
    report["notes"] = files.remove_folder(project["id"], run["id"])
    _audit(db, caller, "删除运行", project["id"], run["id"],
           f"{run['name']}：{report['artifact_count']} 个工件，{report['artifact_bytes']} 字节")
    return {**report, "deleted": True}


@router.delete(PROJECT, response_model=DeletionReport, summary="删除项目及其全部运行（默认只预览）",
               responses={**responses(404, 409, 422), **_STORAGE_FAILED})
def delete_project(db: Db, settings: CurrentSettings, caller: Caller, project: ProjectRow, dry_run: DryRun = True):
    runs = run_store.list_for_project(db, project["id"])
    report = _report(db, project["id"], runs, dry_run, lifecycle_store.version_count(db, project["id"]))
    if dry_run:
        return report
    require_owner(caller, project, "删除项目")
    run_ids = [run["id"] for run in runs]
    with db.write_lock:
        _project_blockers(db, project["id"], run_ids)
    files = ArtifactFiles(settings.artifact_root_url)
    _delete_files_then_rows(db, files, report, lambda: _project_blockers(db, project["id"], run_ids),
                            lambda: lifecycle_store.delete_project(db, project["id"], run_ids))
    report["notes"] = files.remove_folder(project["id"])
    _audit(db, caller, "删除项目", project["id"], None,
           f"{project['name']}：{len(runs)} 个运行，{report['artifact_count']} 个工件，{report['artifact_bytes']} 字节")
    return {**report, "deleted": True}


# Backup


def _backup_folder(target: str, root: Path) -> Path:
    folder = Path(target)
    if not folder.is_absolute():
        raise invalid_field("body", "target", "必须是 API 所在机器上的绝对路径")
    try:
        inside = folder.resolve().is_relative_to(root.resolve())
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


def _clear(folder: Path, existed: bool) -> None:
    if not existed:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _export(db, folder: Path) -> dict[str, int]:
    existed = folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise invalid_field("body", "target", f"无法创建备份目录：{exc}") from exc
    try:
        return backup_store.export_database(db, folder)
    except (duckdb.Error, OSError) as exc:
        _clear(folder, existed)
        raise ApiError(503, f"备份写入失败，已清理未完成的备份：{exc}") from exc


@router.post("/admin/backup", status_code=201, response_model=BackupResult, summary="在线备份存储（管理员）",
             responses={**responses(409, *BODY_ERRORS), **_STORAGE_FAILED})
def backup(db: Db, settings: CurrentSettings, caller: Caller, body: BackupRequest):
    require_role(caller, "admin", "备份存储")
    with db.write_lock:
        folder = _backup_folder(body.target, settings.backup_root_path)
        tables = _export(db, folder)
    written = [entry for entry in folder.rglob("*") if entry.is_file()]
    audit_store.record(db, caller.user, "备份存储", target=str(folder), details=f"{sum(tables.values())} 行")
    return {"folder": str(folder), "tables": tables, "files": len(written),
            "bytes": sum(entry.stat().st_size for entry in written), "schema_version": db.schema_version}


# Compaction


@router.post("/admin/compact", response_model=CompactionResult, summary="压缩存储，收回已删除数据占用的空间（管理员）",
             description="把整个存储重写到一个新文件再替换原文件：删除运行或项目后，DuckDB 文件不会自动变小。"
                         "压缩期间其他请求会等待其完成；行数逐表核对一致后才替换原文件。",
             responses=_COMPACTION_FAILED)
def compact(db: Db, caller: Caller):
    require_role(caller, "admin", "压缩存储")
    try:
        result = db.compact()
    except (duckdb.Error, OSError, CompactionFailed) as exc:
        raise ApiError(503, f"压缩存储失败，存储保持原样：{exc}") from exc
    audit_store.record(db, caller.user, "压缩存储", target=str(db.path),
                       details=f"{result['bytes_before']} → {result['bytes_after']} 字节")
    return result
