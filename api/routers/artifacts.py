import inspect
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ltm import artifact_paths
from ltm.api import artifact_files, download_links, examples, integrity
from ltm.api.auth import Actor, Caller, actor, record_intervention, require_owner, require_project_member
from ltm.api.deps import CurrentSettings, Db, ProjectRow, Releases, RunRow, Runs, json_body_only
from ltm.api.errors import BODY_ERRORS, ErrorBody, conflict, not_found, responses, unprocessable
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.api.visibility import can_see
from ltm.ids import new_id
from ltm.models import (
    Artifact,
    ArtifactCreate,
    ArtifactList,
    ArtifactType,
    DownloadLinks,
    ReleaseState,
    TagRequest,
    TagValue,
)
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import projects as project_store
from ltm.store import releases as release_store
from ltm.store import runs as run_store
from ltm.store import utc_now

ARTIFACTS = "/projects/{project_id}/runs/{run_id}/artifacts"
router = APIRouter(tags=["工件"], dependencies=[Depends(json_body_only)])
# Served without the bearer-token dependency: a signed download link (`grant`) is a credential of its own.
download_router = APIRouter(tags=["工件"])

TAG_DESCRIPTION = (
    "为检查点追加一条标签事件（候选、发布或归档），记录操作人（applied_by）、时间和备注；历史只增不改。\n\n"
    "**一个项目只有一个当前发布**：标记“发布”就是发布这个检查点（与 POST /projects/{project_id}/releases 相同）："
    "先与写入时的 SHA-256 比较（不一致时 409 并标记为已损坏），再冻结复制到发布目录；原来的当前发布在同一事务中"
    "自动追加一条“归档”标签，操作人与本次相同，备注为“被 <运行名> 的 <检查点名> 取代”。"
    "可选字段 replaces 填写调用者确认要取代的当前发布检查点 ID："
    "当前发布已不是它（例如有人刚刚发布了别的检查点）时返回 409，不做任何修改。标记发布需要项目负责人或管理员；"
    "项目要求第二人批准时返回 202，发布申请待另一位成员批准。把当前发布标记为“归档”即撤销发布，只有管理员可以操作；"
    "当前发布不能改标为“候选”。"
)


def _artifact_of(db, run: dict, artifact_id: str) -> dict:
    artifact = artifact_store.get(db, artifact_id) if well_formed(artifact_id, *ARTIFACT_KINDS) else None
    if artifact is None or artifact["run_id"] != run["id"]:
        raise not_found(f"运行 {run['id']} 的工件", artifact_id)
    return artifact


@router.get(ARTIFACTS, response_model=ArtifactList, summary="列出运行工件", responses=responses(404, 422))
def list_artifacts(db: Db, run: RunRow):
    return {"items": artifact_store.list_for_run(db, run["id"])}


@router.post(
    ARTIFACTS,
    status_code=201,
    response_model=Artifact,
    summary="登记工件（供训练流程使用）",
    responses={
        200: {"model": Artifact, "description": "同一运行、类型和路径的工件已登记过，返回原工件"},
        **responses(404, 409, *BODY_ERRORS),
    },
)
def register_artifact(db: Db, runs: Runs, settings: CurrentSettings, caller: Caller, run: RunRow, body: ArtifactCreate):
    try:
        artifact_paths.checked(body.path, settings.artifact_root_url, run["project_id"], run["id"])
    except artifact_paths.OutsideRunFolder as exc:
        raise unprocessable(f"path：{exc}", "path") from None
    with db.writing():
        current = run_store.get(db, run["id"])  # a deletion or an end may have come first
        if current is None:
            raise not_found("运行", run["id"])
        runs.accepting(current, "工件")
        existing = artifact_store.find_by_path(db, run["id"], body.type.value, body.path)
        if existing:
            return JSONResponse(Artifact.model_validate(existing).model_dump(mode="json"), status_code=200)
        artifact = {
            **body.model_dump(mode="json"),
            "id": new_id(body.type.value),
            "run_id": run["id"],
            "project_id": run["project_id"],
            "created_at": utc_now(),
        }
        artifact_store.insert(db, artifact)
    record_intervention(db, caller, run, "登记工件", f"{body.name}（{body.path}）")
    return artifact_store.get(db, artifact["id"])


@router.post(
    ARTIFACTS + "/{artifact_id}/tag",
    response_model=Artifact,
    summary="为工件打标签",
    description=TAG_DESCRIPTION,
    responses={
        202: {"model": Artifact, "description": "项目要求第二人批准：已提交发布申请，批准后检查点才标记为发布"},
        **responses(404, 409, 410, *BODY_ERRORS, 503),
    },
)
def tag_artifact(
    db: Db,
    releases: Releases,
    caller: Caller,
    project: ProjectRow,
    run: RunRow,
    artifact_id: str,
    body: Annotated[TagRequest, Body(openapi_examples={"seed": {"value": examples.TAG}})],
):
    artifact = _artifact_of(db, run, artifact_id)
    if artifact["type"] != ArtifactType.CHECKPOINT.value:
        raise unprocessable(f"工件 {artifact_id} 的类型是 {artifact['type']}，只能为检查点打标签")
    if body.tag == TagValue.RELEASE:
        require_owner(caller, project, "标记发布")
        made = releases.release(project, artifact_id, caller, body.notes, body.replaces)
        if made["state"] == ReleaseState.PENDING:
            answer = Artifact.model_validate(artifact_store.get(db, artifact_id)).model_dump(mode="json")
            return JSONResponse(answer, status_code=202)
        return artifact_store.get(db, artifact_id)
    current = release_store.current(db, project["id"])
    if current is not None and current["artifact_id"] == artifact_id:
        if body.tag != TagValue.ARCHIVE:
            raise conflict(
                f"检查点 {artifact['name']} 是项目的当前发布（#{current['number']}），不能改标为{body.tag.value}："
                "要撤销发布，请由管理员把它标记为归档"
            )
        releases.withdraw(project, caller, body.notes)
        return artifact_store.get(db, artifact_id)
    require_project_member(db, caller, project, "打标签")
    artifact_store.add_tags(db, [(artifact_id, body.tag.value, body.notes)], utc_now(), caller.user)
    details = f"{body.tag.value}：{body.notes or '（无备注）'}"
    auth_store.record(db, caller.user, "打标签", project["id"], run["id"], target=artifact["name"], details=details)
    return artifact_store.get(db, artifact_id)


@router.post(
    ARTIFACTS + "/{artifact_id}/verify",
    response_model=Artifact,
    summary="校验检查点文件",
    description="把检查点的每个文件与写入时记录的 SHA-256 比较。一致时答复工件（曾标记为已损坏的会去掉标记）；"
    "不一致时 409 写明哪个文件不同，并把检查点标记为已损坏（corrupted_at、corruption），文件保持原样不删除；"
    "文件已不存在时 410。恢复、标记发布和下载之前都会自动做同样的校验。",
    responses={410: {"model": ErrorBody, "description": "检查点的文件已不存在"}, **responses(404, 409, 422, 503)},
)
def verify_artifact(db: Db, settings: CurrentSettings, run: RunRow, artifact_id: str):
    return integrity.verify(db, settings.artifact_root_url, _artifact_of(db, run, artifact_id))


@router.post(
    ARTIFACTS + "/download-links",
    response_model=DownloadLinks,
    summary="生成工件下载链接",
    description=f"为运行的每个工件生成限时（{download_links.LIFETIME_SECONDS // 60} 分钟）下载链接。"
    "链接自带签名，浏览器直接打开即可下载，无需访问令牌；下载时仍按链接签发者的身份检查项目可见范围。",
    responses=responses(404, 422),
)
def create_download_links(db: Db, caller: Caller, run: RunRow):
    expires = download_links.expiry()
    items = []
    for artifact in artifact_store.list_for_run(db, run["id"]):
        grant = download_links.issue(artifact["id"], caller.user, caller.role, expires)
        path = f"/projects/{run['project_id']}/runs/{run['id']}/artifacts/{artifact['id']}/download"
        items.append({"artifact_id": artifact["id"], "url": f"{path}?grant={grant}"})
    return {"expires_at": datetime.fromtimestamp(expires, timezone.utc), "items": items}


async def _downloader(
    request: Request,
    artifact_id: str,
    grant: Annotated[str | None, Query(max_length=4000, description="限时下载链接的签名")] = None,
) -> Actor:
    """The caller named by a signed link's grant, else by the request's token as on every other route."""
    if grant is not None:
        granted = download_links.verify(grant, artifact_id)
        return Actor(granted.user, granted.role)
    found = actor(request)
    return await found if inspect.isawaitable(found) else found


Downloader = Annotated[Actor, Depends(_downloader)]


DOWNLOAD_DESCRIPTION = (
    "流式下载工件的文件。单个文件原样发送；文件夹形式的检查点（多个文件）边读边打包成不压缩的 tar 发送，"
    "也可以用 file 参数只下载其中一个文件。响应带 Content-Length、ETag 和 Accept-Ranges: bytes，"
    "支持 HTTP Range（206；起点超出末尾时 416）与 If-Range，中断的下载可以续传。"
    "认证开启时用 Authorization 访问令牌，或用“生成工件下载链接”返回的限时链接（grant 参数）。"
    "工件已登记但文件已不存在时返回 410。"
)


@download_router.get(
    ARTIFACTS + "/{artifact_id}/download",
    summary="下载工件",
    description=DOWNLOAD_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}, "application/x-tar": {}}, "description": "工件的全部字节"},
        206: {"content": {"application/octet-stream": {}, "application/x-tar": {}}, "description": "Range 指定的字节"},
        410: {"model": ErrorBody, "description": "工件已登记，但文件已不存在"},
        416: {"model": ErrorBody, "description": "Range 的起点超出了文件末尾"},
        503: {"model": ErrorBody, "description": "API 进程暂时无法读取工件所在的存储"},
        **responses(401, 403, 404, 409, 422),
    },
)
def download_artifact(
    caller: Downloader,
    db: Db,
    runs: Runs,
    settings: CurrentSettings,
    project_id: str,
    run_id: str,
    artifact_id: str,
    file: Annotated[str | None, Query(max_length=1000, description="只下载文件夹形式工件中的这个文件")] = None,
    range_header: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
    if_range: Annotated[str | None, Header(alias="If-Range", include_in_schema=False)] = None,
):
    project = project_store.get_row(db, project_id) if well_formed(project_id, "project") else None
    if project is None or not can_see(db, caller, project):
        raise not_found("项目", project_id)
    run = runs.get(project["id"], run_id)
    artifact = _artifact_of(db, run, artifact_id)
    root = settings.artifact_root_url

    def inside(path_url: str) -> artifact_paths.Location:
        try:
            return artifact_paths.checked(path_url, root, project["id"], run["id"])
        except artifact_paths.OutsideRunFolder as exc:
            raise conflict(f"工件 {artifact['name']} 的文件不在运行 {run['id']} 的目录中，不能下载：{exc}") from None

    location = inside(artifact["path"])
    thing = artifact_files.served(
        location, artifact["name"], file, lambda path: inside(artifact_paths.Location(location.protocol, path).url)
    )
    size = thing.size
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": thing.etag,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(thing.filename)}",
    }
    try:
        wanted = artifact_files.byte_range(range_header, size) if if_range in (None, thing.etag) else None
    except artifact_files.Unsatisfiable:
        return JSONResponse(
            {"detail": f"请求的字节范围 {range_header} 超出了工件 {artifact['name']} 的大小（{size} 字节）"},
            status_code=416,
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    first, last = wanted or (0, size - 1)
    if first == 0:  # a download starts: its bytes must be the ones written; a resumed one continues what was checked
        integrity.verify(db, root, artifact)
    if wanted:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1 if size else 0)
    body = artifact_files.stream(location, thing, first, last) if size else iter(())
    return StreamingResponse(body, status_code=206 if wanted else 200, media_type=thing.media_type, headers=headers)
