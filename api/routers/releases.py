import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from ltm import artifact_paths
from ltm.api import artifact_files
from ltm.api.auth import Caller, require_owner
from ltm.api.deps import ProjectRow, Releases, json_body_only
from ltm.api.errors import BODY_ERRORS, ErrorBody, conflict, responses
from ltm.models import CheckpointManifest, ProjectReleases, Release, ReleaseDecision, ReleaseRequest, RollbackRequest

router = APIRouter(tags=["发布"], dependencies=[Depends(json_body_only)])
RELEASES = "/projects/{project_id}/releases"
RELEASE = RELEASES + "/{release_id}"
MOVES = (
    "项目要求第二人批准（release_approval）时，发布和回滚先成为待批准，由另一位项目成员批准后才生效。"
    "发布前检查点的每个文件都与写入时的 SHA-256 比较，不一致时 409 并标记为已损坏；"
    "通过后文件被冻结复制到发布目录，删除运行、保留策略和压缩都不会碰到它。"
)


@router.get(
    RELEASES,
    response_model=ProjectReleases,
    summary="项目发布：当前发布、待批准的申请与历史",
    description="当前发布是状态为“生效”的那一次；历史列出每次发布与回滚（运行、检查点、步数、申请人、批准人、"
    "撤销人、时间和备注），最新的在前。",
    responses=responses(404, 422),
)
def list_releases(releases: Releases, project: ProjectRow):
    return releases.view(project)


@router.post(
    RELEASES,
    status_code=201,
    response_model=Release,
    summary="发布检查点（成为项目的当前发布）",
    description="原来的当前发布变为“已被取代”，它的检查点自动追加“归档”标签。" + MOVES + "需要项目负责人或管理员。",
    responses=responses(404, 409, 410, *BODY_ERRORS, 503),
)
def release(releases: Releases, caller: Caller, project: ProjectRow, body: ReleaseRequest):
    require_owner(caller, project, "发布检查点")
    return releases.release(project, body.artifact_id, caller, body.notes, body.replaces)


@router.post(
    RELEASES + "/rollback",
    status_code=201,
    response_model=Release,
    summary="回滚到较早的发布",
    description="以较早一次发布的冻结副本重新成为当前发布（记录为一次“回滚”）；原检查点的运行已删除也可以。"
    + MOVES
    + "需要项目负责人或管理员。",
    responses=responses(404, 409, *BODY_ERRORS),
)
def rollback(releases: Releases, caller: Caller, project: ProjectRow, body: RollbackRequest):
    require_owner(caller, project, "回滚发布")
    return releases.rollback(project, body.release_id, caller, body.notes)


@router.post(
    RELEASES + "/withdraw",
    response_model=Release,
    summary="撤销当前发布（管理员）",
    description="项目不再有当前发布；这次发布与它的冻结副本保留在历史中，状态为“已撤销”，检查点追加“归档”标签。",
    responses=responses(404, 409, *BODY_ERRORS),
)
def withdraw(releases: Releases, caller: Caller, project: ProjectRow, body: ReleaseDecision | None = None):
    return releases.withdraw(project, caller, body.notes if body else None)


@router.post(
    RELEASE + "/approve",
    response_model=Release,
    summary="批准待批准的发布",
    description="由申请人以外的项目成员批准；批准时再次校验冻结副本。",
    responses=responses(404, 409, *BODY_ERRORS),
)
def approve(
    releases: Releases, caller: Caller, project: ProjectRow, release_id: str, body: ReleaseDecision | None = None
):
    return releases.approve(project, release_id, caller, body.notes if body else None)


@router.post(
    RELEASE + "/reject",
    response_model=Release,
    summary="拒绝待批准的发布",
    responses=responses(404, 409, *BODY_ERRORS),
)
def reject(
    releases: Releases, caller: Caller, project: ProjectRow, release_id: str, body: ReleaseDecision | None = None
):
    return releases.reject(project, release_id, caller, body.notes if body else None)


@router.get(
    RELEASE + "/manifest",
    response_model=CheckpointManifest,
    summary="发布的清单",
    description="发布时记录的清单：谱系、数据集指纹、代码版本、环境、超参数、最终评估指标与文件的 SHA-256；"
    "之后删除运行也不会改变它。download=true 时作为附件 release-<序号>-manifest.json 下载。",
    responses=responses(404, 409, 422),
)
def manifest(
    releases: Releases,
    project: ProjectRow,
    release_id: str,
    download: Annotated[bool, Query(description="作为附件下载")] = False,
):
    release = releases.get(project, release_id)
    if release["manifest"] is None:
        raise conflict(f"发布 #{release['number']} 早于清单功能，没有记录清单；请查看它的检查点的清单")
    if not download:
        return release["manifest"]
    return Response(
        json.dumps(release["manifest"], ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f"attachment; filename=release-{release['number']}-manifest.json"},
    )


@router.get(
    RELEASE + "/download",
    summary="下载发布的冻结副本",
    description="冻结副本（文件夹打包为不压缩的 tar）；先与冻结时的 SHA-256 比较，不一致时 409。",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-tar": {}, "application/octet-stream": {}}, "description": "冻结副本"},
        410: {"model": ErrorBody, "description": "冻结副本已不存在"},
        **responses(404, 409, 422),
    },
)
def download(releases: Releases, project: ProjectRow, release_id: str):
    release = releases.get(project, release_id)
    if release["frozen_path"] is None:
        raise conflict(f"发布 #{release['number']} 没有冻结副本：{release['frozen_note'] or '发布时未能复制'}")
    releases.verified_copy(release)
    folder = artifact_paths.release_folder(releases.root_url, project["id"], release["id"])
    location = artifact_paths.locate(release["frozen_path"])

    def inside(path_url: str) -> None:
        if not folder.contains(artifact_paths.locate(path_url)):
            raise conflict(f"发布 #{release['number']} 的冻结副本中有指向发布目录之外的文件，不能下载")

    thing = artifact_files.served(
        location,
        release["artifact_name"],
        None,
        lambda path: inside(artifact_paths.Location(location.protocol, path).url),
    )
    headers = {
        "ETag": thing.etag,
        "Content-Length": str(thing.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(thing.filename)}",
    }
    body = artifact_files.stream(location, thing, 0, thing.size - 1) if thing.size else iter(())
    return StreamingResponse(body, media_type=thing.media_type, headers=headers)
