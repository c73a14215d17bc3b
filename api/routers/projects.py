from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query

from ltm.api import examples
from ltm.api.auth import Caller, require_owner, require_project_member, require_role
from ltm.api.deps import Db, ProjectRow, json_body_only
from ltm.api.errors import BODY_ERRORS, conflict, responses
from ltm.api.trainer_catalog import checked_trainer
from ltm.ids import new_id
from ltm.models import Project, ProjectCreate, ProjectListItem, ProjectStatus, ProjectUpdate, ProjectVersion
from ltm.store import auth as auth_store
from ltm.store import projects as project_store
from ltm.store import runs as run_store
from ltm.store import utc_now
from ltm.vocabulary import Role

StatusFilter = Literal["草稿", "进行中", "运行中", "空闲", "已归档"]  # ProjectStatus, plus 运行中 as the seed writes it

router = APIRouter(prefix="/projects", tags=["项目"], dependencies=[Depends(json_body_only)])


def project_view(db, project: dict) -> dict:
    runs = run_store.list_for_project(db, project["id"])
    return {**project, "runs": runs, "versions": project_store.versions(db, project["id"])}


@router.post("", status_code=201, response_model=Project, summary="创建项目", responses=responses(409, *BODY_ERRORS))
def create_project(
    db: Db,
    caller: Caller,
    body: Annotated[ProjectCreate, Body(openapi_examples={"seed": {"value": examples.PROJECT_CREATE}})],
):
    require_role(caller, Role.MEMBER, "创建项目")
    if body.default_trainer:
        checked_trainer(body.default_trainer, "default_trainer")
    now = utc_now()
    project = {**body.model_dump(), "id": new_id("project"), "archived": False, "created_at": now, "updated_at": now}
    with db.writing():
        if project_store.name_taken(db, body.name):
            raise conflict(f"项目名称“{body.name}”已存在，请换一个名称")
        project_store.insert(db, project)
    auth_store.record(db, caller.user, "创建项目", project["id"], target=body.name)
    return project_view(db, project_store.get(db, project["id"]))


@router.get("", response_model=list[ProjectListItem], summary="列出项目", responses=responses(422))
def list_projects(
    db: Db,
    owner: Annotated[str | None, Query(max_length=200, description="按负责人过滤")] = None,
    status: Annotated[
        StatusFilter | None, Query(description="按状态过滤：草稿、进行中（也可写作 运行中）、空闲、已归档")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64, description="按标签过滤")] = None,
    q: Annotated[str | None, Query(max_length=200, description="按名称搜索")] = None,
):
    if status == "运行中":
        status = ProjectStatus.ACTIVE.value
    return project_store.list_(db, owner=owner, status=status, tag=tag, query=q)


@router.get("/{project_id}", response_model=Project, summary="获取项目详情", responses=responses(404, 422))
def get_project(db: Db, project: ProjectRow):
    return project_view(db, project_store.get(db, project["id"]))


@router.patch(
    "/{project_id}", response_model=Project, summary="修改项目（生成新版本）", responses=responses(404, *BODY_ERRORS)
)
def update_project(db: Db, caller: Caller, project: ProjectRow, body: ProjectUpdate):
    require_project_member(db, caller, project, "修改项目")
    requested = body.model_dump(exclude_unset=True)
    for key, empty in (("tags", []), ("default_hyperparameters", {})):
        if key in requested and requested[key] is None:
            requested[key] = empty
    if "status" in requested:
        requested["archived"] = requested.pop("status") == "已归档"
    if requested.get("default_trainer"):
        checked_trainer(requested["default_trainer"], "default_trainer")
    changes = {k: v for k, v in requested.items() if v != project[k]}
    if "archived" in changes:
        require_owner(caller, project, "归档或恢复项目")
    if changes:
        with db.writing():
            version = project_store.update(db, project["id"], changes, utc_now())
        action = ("归档项目" if changes["archived"] else "恢复项目") if "archived" in changes else "修改项目"
        auth_store.record(db, caller.user, action, project["id"], details=f"版本 {version}：{'、'.join(changes)}")
    return project_view(db, project_store.get(db, project["id"]))


@router.get(
    "/{project_id}/versions", response_model=list[ProjectVersion], summary="项目版本历史", responses=responses(404, 422)
)
def list_versions(db: Db, project: ProjectRow):
    return project_store.versions(db, project["id"])
