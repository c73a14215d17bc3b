from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ltm.api import audit_names
from ltm.api.auth import RUN_PATH, Caller, issue_token, require_owner, require_project_member, require_role
from ltm.api.deps import Db, ProjectRow, RunRow, Runs, json_body_only
from ltm.api.errors import BODY_ERRORS, not_found, responses
from ltm.models import (
    AuditEvent,
    Identity,
    LaunchCode,
    MembersUpdate,
    ProjectMembers,
    RunToken,
    TokenCreate,
    TokenCreated,
    TokenInfo,
)
from ltm.store import auth as auth_store
from ltm.store import from_db_time
from ltm.vocabulary import Role

router = APIRouter(tags=["访问控制"], dependencies=[Depends(json_body_only)])
# Served without a bearer token: the launch code in the body is the credential.
launch_router = APIRouter(tags=["访问控制"], dependencies=[Depends(json_body_only)])


@router.get("/whoami", response_model=Identity, summary="当前调用者")
def whoami(caller: Caller):
    return {"user": caller.user, "role": caller.role, "run_id": caller.run_id}


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    summary="创建访问令牌（管理员）",
    responses=responses(*BODY_ERRORS),
)
def create_token(db: Db, caller: Caller, body: TokenCreate):
    require_role(caller, Role.ADMIN, "管理访问令牌")
    token, record = issue_token(db, body.user, body.role, created_by=caller.user)
    auth_store.record(db, caller.user, "创建令牌", target=record["id"], details=f"{body.user}（{body.role}）")
    return {**record, "created_at": from_db_time(record["created_at"]), "user": body.user, "token": token}


@router.get("/tokens", response_model=list[TokenInfo], summary="列出访问令牌（管理员）")
def list_tokens(db: Db, caller: Caller):
    require_role(caller, Role.ADMIN, "管理访问令牌")
    return [{**row, "user": row["user_name"]} for row in auth_store.list_tokens(db)]


@router.delete(
    "/tokens/{token_id}", response_model=TokenInfo, summary="吊销访问令牌（管理员）", responses=responses(404, 422)
)
def revoke_token(db: Db, caller: Caller, token_id: str):
    require_role(caller, Role.ADMIN, "管理访问令牌")
    revoked = auth_store.revoke_token(db, token_id)
    if revoked is None:
        raise not_found("令牌", token_id)
    auth_store.record(db, caller.user, "吊销令牌", target=token_id)
    return {**revoked, "user": revoked["user_name"]}


@router.post(
    RUN_PATH + "/token",
    status_code=201,
    response_model=RunToken,
    summary="为自己训练的运行领取运行令牌（项目成员）",
    description="直接调用训练流程时，流程用调用者的令牌为这个运行换一个只属于它的运行令牌，再用它上报。"
    "只适用于尚未开始、未交给编排服务的运行；同一运行之前签发的运行令牌随即失效。",
    responses=responses(404, 409, 422),
)
def issue_run_token(runs: Runs, caller: Caller, project: ProjectRow, run: RunRow):
    require_project_member(runs.db, caller, project, "领取运行令牌")
    token = runs.issue_run_token(run, caller.user)
    auth_store.record(runs.db, caller.user, "领取运行令牌", project["id"], run["id"], target=run["name"])
    return {"run_id": run["id"], "token": token}


@launch_router.post(
    "/runs/{run_id}/token",
    status_code=201,
    response_model=RunToken,
    summary="用启动码换取运行令牌（供训练流程使用，无需访问令牌）",
    description="API 把运行交给编排服务时只在作业变量里放一次性启动码，不放令牌。训练流程启动后用它换取运行令牌："
    "启动码只能使用一次，只在编排服务确认流程已启动后、提交后 LTM_LAUNCH_CODE_SECONDS 秒内有效，运行结束即作废。",
    responses=responses(401, 404, 409, *BODY_ERRORS, 503),
)
def exchange_launch_code(runs: Runs, run_id: str, body: LaunchCode):
    return {"run_id": run_id, "token": runs.exchange_launch_code(run_id, body.code)}


@router.get(
    "/projects/{project_id}/members", response_model=ProjectMembers, summary="项目成员", responses=responses(404, 422)
)
def list_members(db: Db, caller: Caller, project: ProjectRow):
    return {"project_id": project["id"], "members": auth_store.members(db, project["id"])}


@router.put(
    "/projects/{project_id}/members",
    response_model=ProjectMembers,
    summary="设置项目成员（负责人或管理员）",
    responses=responses(404, *BODY_ERRORS),
)
def set_members(db: Db, caller: Caller, project: ProjectRow, body: MembersUpdate):
    require_owner(caller, project, "设置项目成员")
    wanted = list(dict.fromkeys(body.members))
    auth_store.set_members(db, project["id"], wanted)
    auth_store.record(db, caller.user, "设置成员", project["id"], details="、".join(wanted) or "（无）")
    return {"project_id": project["id"], "members": auth_store.members(db, project["id"])}


@router.get(
    "/projects/{project_id}/audit",
    response_model=list[AuditEvent],
    summary="项目审计记录",
    responses=responses(404, 422),
)
def audit_trail(
    db: Db,
    caller: Caller,
    project: ProjectRow,
    limit: Annotated[int, Query(ge=1, le=1000, description="最多返回条数")] = 100,
):
    return audit_names.readable(db, auth_store.audit_trail(db, project["id"], limit))
