from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query

from ltm.api import examples
from ltm.api.auth import Actor, Caller, require_owner, require_project_member, require_role
from ltm.api.deps import Db, ProjectRow, json_body_only
from ltm.api.errors import BODY_ERRORS, Refusal, conflict, invalid_field, not_found, responses
from ltm.api.trainer_catalog import checked_trainer
from ltm.api.visibility import list_filter
from ltm.ids import new_id
from ltm.models import Project, ProjectCreate, ProjectListItem, ProjectStatus, ProjectUpdate, ProjectVersion, nfkc
from ltm.store import auth as auth_store
from ltm.store import projects as project_store
from ltm.store import runs as run_store
from ltm.store import utc_now
from ltm.vocabulary import Role

StatusFilter = Literal["草稿", "进行中", "运行中", "空闲", "已归档"]  # ProjectStatus, plus 运行中 as the seed writes it

router = APIRouter(prefix="/projects", tags=["项目"], dependencies=[Depends(json_body_only)])


def project_view(db, project: dict, with_runs: bool = True) -> dict:
    runs = run_store.list_for_project(db, project["id"]) if with_runs else []
    return {**project, "runs": runs, "versions": project_store.versions(db, project["id"])}


@router.post("", status_code=201, response_model=Project, summary="创建项目", responses=responses(409, *BODY_ERRORS))
def create_project(
    db: Db,
    caller: Caller,
    body: Annotated[ProjectCreate, Body(openapi_examples={"seed": {"value": examples.PROJECT_CREATE}})],
):
    require_role(caller, Role.MEMBER, "创建项目")
    owner = _owner(caller, body.owner)
    if body.default_trainer:
        checked_trainer(body.default_trainer, "default_trainer")
    now = utc_now()
    project = {
        **body.model_dump(mode="json"),
        "owner": owner,
        "id": new_id("project"),
        "archived": False,
        "created_at": now,
        "updated_at": now,
    }
    with db.writing():
        if project_store.name_taken(db, body.name):
            raise conflict(f"项目名称“{body.name}”已存在，请换一个名称")
        project_store.insert(db, project)
        answer = project_view(db, project_store.get(db, project["id"]))  # version 1, whatever edits follow
    auth_store.record(db, caller.user, "创建项目", project["id"], target=body.name)
    return answer


def _owner(caller: Actor, wanted: str | None) -> str:
    """The caller owns what they create; only admins name someone else. Without a token (auth off) the owner
    is whoever the body names, and must be named."""
    if caller.token_id is None:
        if wanted is None:
            raise invalid_field("body", "owner", "缺少必填字段")
        return wanted
    if wanted is not None and wanted != caller.user and not caller.is_admin:
        raise Refusal(403, f"owner：{caller.user} 不能创建负责人为“{wanted}”的项目，只有管理员可以指定其他负责人")
    return wanted or caller.user


@router.get("", response_model=list[ProjectListItem], summary="列出项目", responses=responses(422))
def list_projects(
    db: Db,
    caller: Caller,
    owner: Annotated[str | None, Query(max_length=200, description="按负责人过滤")] = None,
    status: Annotated[
        StatusFilter | None, Query(description="按状态过滤：草稿、进行中（也可写作 运行中）、空闲、已归档")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64, description="按标签过滤")] = None,
    q: Annotated[str | None, Query(max_length=200, description="按名称搜索")] = None,
):
    if status == "运行中":
        status = ProjectStatus.ACTIVE.value
    owner, tag, q = (nfkc(value) for value in (owner, tag, q))  # spelled as the stored names are
    return project_store.list_(db, owner=owner, status=status, tag=tag, query=q, **list_filter(db, caller))


@router.get("/{project_id}", response_model=Project, summary="获取项目详情", responses=responses(404, 422))
def get_project(
    db: Db,
    project: ProjectRow,
    runs: Annotated[
        bool, Query(description="false 时 runs 留空（run_count 照常），运行请用 GET /projects/{id}/runs 分页获取")
    ] = True,
):
    return project_view(db, project_store.get(db, project["id"]), with_runs=runs)


@router.patch(
    "/{project_id}",
    response_model=Project,
    summary="修改项目（生成新版本）",
    responses=responses(404, 409, *BODY_ERRORS),
)
def update_project(db: Db, caller: Caller, project: ProjectRow, body: ProjectUpdate):
    require_project_member(db, caller, project, "修改项目")
    requested = body.model_dump(exclude_unset=True, mode="json")
    emptied = {"tags": [], "default_hyperparameters": {}, "default_priority": 0, "release_approval": False}
    emptied |= {"preemption": False, "max_restarts": 0, "metric_thresholds": [], "log_rules": []}
    for key, empty in emptied.items():
        if key in requested and requested[key] is None:
            requested[key] = empty
    if "status" in requested:
        requested["archived"] = requested.pop("status") == "已归档"
    if requested.get("default_trainer"):
        checked_trainer(requested["default_trainer"], "default_trainer")
    # Compared, written and answered under the writer, so the answer is the version this request made.
    with db.writing():
        current = project_store.get_row(db, project["id"])
        if current is None:
            raise not_found("项目", project["id"])
        changes = {k: v for k, v in requested.items() if v != current[k]}
        if "name" in changes and project_store.name_taken(db, changes["name"], other_than=project["id"]):
            raise conflict(f"项目名称“{changes['name']}”已存在，请换一个名称")
        if "owner" in changes:
            require_owner(caller, current, "修改项目负责人")
        if "archived" in changes:
            require_owner(caller, current, "归档或恢复项目")
        if "visibility" in changes:
            require_owner(caller, current, "修改项目的可见范围")
        if "release_approval" in changes:
            require_owner(caller, current, "修改发布是否须经批准")
        if "preemption" in changes:
            require_owner(caller, current, "修改是否允许抢占")
        version = project_store.update(db, project["id"], changes, utc_now()) if changes else None
        answer = project_view(db, project_store.get(db, project["id"]))
    if version is not None:
        action = ("归档项目" if changes["archived"] else "恢复项目") if "archived" in changes else "修改项目"
        auth_store.record(db, caller.user, action, project["id"], details=f"版本 {version}：{'、'.join(changes)}")
    return answer


@router.get(
    "/{project_id}/versions", response_model=list[ProjectVersion], summary="项目版本历史", responses=responses(404, 422)
)
def list_versions(db: Db, project: ProjectRow):
    return project_store.versions(db, project["id"])
