from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from ltm.api.auth import Caller, issue_token, require_owner, require_role
from ltm.api.deps import Db, ProjectRow, json_body_only
from ltm.api.errors import BODY_ERRORS, not_found, responses
from ltm.models import AuditEvent, Identity, MembersUpdate, TokenCreate, TokenCreated, TokenInfo
from ltm.store import auth as auth_store
from ltm.store import from_db_time
from ltm.vocabulary import Role

router = APIRouter(tags=["访问控制"], dependencies=[Depends(json_body_only)])


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


@router.delete("/tokens/{token_id}", status_code=204, summary="吊销访问令牌（管理员）", responses=responses(404, 422))
def revoke_token(db: Db, caller: Caller, token_id: str):
    require_role(caller, Role.ADMIN, "管理访问令牌")
    if not auth_store.revoke_token(db, token_id):
        raise not_found("令牌", token_id)
    auth_store.record(db, caller.user, "吊销令牌", target=token_id)
    return Response(status_code=204)


@router.get(
    "/projects/{project_id}/members", response_model=list[str], summary="项目成员", responses=responses(404, 422)
)
def list_members(db: Db, caller: Caller, project: ProjectRow):
    return auth_store.members(db, project["id"])


@router.put(
    "/projects/{project_id}/members",
    response_model=list[str],
    summary="设置项目成员（负责人或管理员）",
    responses=responses(404, *BODY_ERRORS),
)
def set_members(db: Db, caller: Caller, project: ProjectRow, body: MembersUpdate):
    require_owner(caller, project, "设置项目成员")
    wanted = list(dict.fromkeys(body.members))
    auth_store.set_members(db, project["id"], wanted)
    auth_store.record(db, caller.user, "设置成员", project["id"], details="、".join(wanted) or "（无）")
    return auth_store.members(db, project["id"])


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
    return auth_store.audit_trail(db, project["id"], limit)
