"""Who is calling, and what they may do. Off on loopback by default; on whenever the API listens beyond it."""

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ltm.api.errors import Refusal
from ltm.ids import new_id
from ltm.store import Database, utc_now
from ltm.store import auth as auth_store
from ltm.vocabulary import USER_ROLES, Role

ROLES = tuple(role.value for role in USER_ROLES)
LOCAL = "本地用户"


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    run_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Database, user: str, role: str, created_by: str, run_id: str | None = None) -> tuple[str, dict]:
    """A new secret (shown once) and its stored record, which keeps only the hash."""
    token = "ltm_" + secrets.token_urlsafe(32)
    record = {
        "id": new_id("token"),
        "token_hash": hash_token(token),
        "user_name": user,
        "role": role,
        "run_id": run_id,
        "created_by": created_by,
        "created_at": utc_now(),
    }
    auth_store.insert_token(db, record)
    return token, record


def actor(request: Request) -> Actor:
    """The caller; with auth on, a missing, unknown or revoked token is a 401."""
    if not (request.app.state.settings.auth or _arrived_over_network(request)):
        return Actor(LOCAL, Role.ADMIN.value)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(401, "需要访问令牌：请在请求头中提供 Authorization: Bearer <令牌>")
    found = auth_store.find_token(request.app.state.db, hash_token(token.strip()))
    if found is None:
        raise Refusal(401, "访问令牌无效或已被吊销")
    caller = Actor(found["user_name"], found["role"], found["run_id"])
    if caller.run_id and not _within_run(request, caller.run_id):
        raise Refusal(403, f"此令牌只能访问运行 {caller.run_id}")
    return caller


def _arrived_over_network(request: Request) -> bool:
    """Tokens are required beyond loopback whatever LTM_AUTH says: the socket's own address decides, so an app
    served by any server (not only `ltm api`) holds the rule. In-process transports name no IP address."""
    server = request.scope.get("server")
    try:
        return bool(server) and not ipaddress.ip_address(server[0]).is_loopback
    except ValueError:
        return False


def _within_run(request: Request, run_id: str) -> bool:
    """A training flow's token writes only to its run and reads only within its project."""
    params = request.path_params
    if params.get("run_id") == run_id:
        return True
    if request.method != "GET" or "project_id" not in params:
        return False
    return (
        request.app.state.db.fetch_one(
            "SELECT count(*) FROM runs WHERE id = ? AND project_id = ?", [run_id, params["project_id"]]
        )[0]
        > 0
    )


Caller = Annotated[Actor, Depends(actor)]


def require_role(caller: Actor, role: str, doing: str) -> None:
    if ROLES.index(caller.role if caller.role in ROLES else Role.VIEWER) < ROLES.index(role):
        raise Refusal(403, f"{caller.user}（{caller.role}）无权{doing}：需要 {role} 角色")


def can_work_on(db: Database, caller: Actor, project: dict) -> bool:
    return caller.is_admin or (
        caller.role == Role.MEMBER
        and (caller.user == project["owner"] or caller.user in auth_store.members(db, project["id"]))
    )


def require_project_member(db: Database, caller: Actor, project: dict, doing: str) -> None:
    if caller.run_id:
        return
    if not can_work_on(db, caller, project):
        raise Refusal(403, f"{caller.user} 无权{doing}：只有项目负责人、项目成员或管理员可以操作项目 {project['id']}")


def require_owner(caller: Actor, project: dict, doing: str) -> None:
    if not (caller.is_admin or (caller.role == Role.MEMBER and caller.user == project["owner"])):
        raise Refusal(403, f"{caller.user} 无权{doing}：只有项目负责人（{project['owner']}）或管理员可以这样做")
