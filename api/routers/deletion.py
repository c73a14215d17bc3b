"""Deleting artifacts, runs and projects; each DELETE previews (dry_run=true, the default) before it deletes.
The files-before-rows work is in ltm.api.deletion_service."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ltm.api import deletion_service as deletion
from ltm.api.auth import Caller, require_owner
from ltm.api.deps import CurrentSettings, Db, ProjectRow, RunRow, json_body_only
from ltm.api.errors import ErrorBody, responses
from ltm.models import ArtifactDeletion, DeletionReport
from ltm.store import auth as auth_store
from ltm.store import lifecycle as lifecycle_store
from ltm.store import runs as run_store

router = APIRouter(tags=["数据生命周期"], dependencies=[Depends(json_body_only)])
PROJECT = "/projects/{project_id}"
RUN = PROJECT + "/runs/{run_id}"
DryRun = Annotated[bool, Query(description="true（默认）只预览将删除的内容，不做任何修改；false 才真正删除")]
_STORAGE_FAILED = {503: {"model": ErrorBody, "description": "工件文件删除失败或备份写入失败；未删除的记录保持不变"}}


@router.delete(
    RUN + "/artifacts/{artifact_id}",
    response_model=ArtifactDeletion,
    summary="删除工件（先删文件再删记录）",
    responses={**responses(404, 409, 422), **_STORAGE_FAILED},
)
def delete_artifact(
    db: Db,
    settings: CurrentSettings,
    caller: Caller,
    project: ProjectRow,
    run: RunRow,
    artifact_id: str,
    dry_run: DryRun = True,
):
    artifact = deletion.artifact_of(db, run, artifact_id)
    if not dry_run:
        require_owner(caller, project, "删除工件")
    files = deletion.ArtifactFiles(settings.artifact_root_url)
    deletion.refuse_artifact_delete(db, files, project["id"], run["id"], artifact)
    if dry_run:
        return {"dry_run": True, "deleted": False, "artifact": artifact}
    deletion.delete_artifact(db, files, project["id"], run["id"], artifact)
    auth_store.record(
        db, caller.user, "删除工件", project["id"], run["id"], details=f"{artifact_id}（{artifact['path']}）"
    )
    return {"dry_run": False, "deleted": True, "artifact": artifact}


@router.delete(
    RUN,
    response_model=DeletionReport,
    summary="删除运行（默认只预览）",
    responses={**responses(404, 409, 422), **_STORAGE_FAILED},
)
def delete_run(
    db: Db, settings: CurrentSettings, caller: Caller, project: ProjectRow, run: RunRow, dry_run: DryRun = True
):
    if not dry_run:
        require_owner(caller, project, "删除运行")
    report = deletion.report(db, project["id"], [run], dry_run)
    if dry_run:
        return report
    deletion.delete_run(db, deletion.ArtifactFiles(settings.artifact_root_url), project["id"], run["id"], report)
    auth_store.record(
        db,
        caller.user,
        "删除运行",
        project["id"],
        run["id"],
        details=f"{run['name']}：{report['artifact_count']} 个工件，{report['artifact_bytes']} 字节",
    )
    return {**report, "deleted": True}


@router.delete(
    PROJECT,
    response_model=DeletionReport,
    summary="删除项目及其全部运行（默认只预览）",
    responses={**responses(404, 409, 422), **_STORAGE_FAILED},
)
def delete_project(db: Db, settings: CurrentSettings, caller: Caller, project: ProjectRow, dry_run: DryRun = True):
    if not dry_run:
        require_owner(caller, project, "删除项目")
    runs = run_store.list_for_project(db, project["id"])
    report = deletion.report(db, project["id"], runs, dry_run, lifecycle_store.version_count(db, project["id"]))
    if dry_run:
        return report
    run_ids = [run["id"] for run in runs]
    deletion.delete_project(db, deletion.ArtifactFiles(settings.artifact_root_url), project["id"], run_ids, report)
    auth_store.record(
        db,
        caller.user,
        "删除项目",
        project["id"],
        None,
        details=f"{project['name']}：{len(runs)} 个运行，{report['artifact_count']} 个工件，"
        f"{report['artifact_bytes']} 字节",
    )
    return {**report, "deleted": True}
