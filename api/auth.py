"""Who is calling, and what they may do. Off on loopback by default; on whenever the API listens beyond it."""

import functools
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
from ltm.store import runs as run_store
from ltm.vocabulary import USER_ROLES, Role

ROLES = tuple(role.value for role in USER_ROLES)
LOCAL = "本地用户"

PROJECT_PATH = "/projects/{project_id}"
RUN_PATH = PROJECT_PATH + "/runs/{run_id}"
# What a run reports about itself: only its own flow (its run token) and admins may call these.
RUN_REPORTS = frozenset(
    {
        ("PATCH", RUN_PATH),
        ("POST", RUN_PATH + "/logs"),
        ("POST", RUN_PATH + "/metrics"),
        ("POST", RUN_PATH + "/report"),
        ("POST", RUN_PATH + "/artifacts"),
    }
)
# The whole of what a run token may call besides its run's reports and GETs within its run's project.
RUNNER_ANYWHERE = frozenset({("GET", "/whoami"), ("GET", "/trainers")})
RUNNER_OWN_RUN = RUN_REPORTS | {("GET", "/runs/{run_id}")}


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    run_id: str | None = None
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    db: Database, user: str, role: str, created_by: str, run_id: str | None = None, prefix: str = "ltm_"
) -> tuple[str, dict]:
    """A new secret (shown once) and its stored record, which keeps only the hash."""
    token = prefix + secrets.token_urlsafe(32)
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


def issue_run_token(db: Database, run_id: str, issued_by: str) -> str:
    """The token a run's own flow reports with: it can do what RUN_REPORTS and `_runner_may` allow, nothing else."""
    token, _ = issue_token(db, f"运行 {run_id}", Role.RUNNER.value, issued_by, run_id=run_id)
    return token


def issue_launch_code(db: Database, run_id: str) -> str:
    """A one-time code the launched flow exchanges for its run token; it is not a token and authenticates nothing."""
    code, _ = issue_token(db, f"运行 {run_id}", Role.LAUNCH.value, "ltm", run_id=run_id, prefix="ltm_launch_")
    return code


async def actor(request: Request) -> Actor:
    """The caller, and whether the route lets them in at all: with auth on, a missing, unknown or revoked token is
    a 401; a run token outside its allow-list, or anyone but a run's own token or an admin writing what a run
    reports, is a 403."""
    if not (request.app.state.settings.auth or arrived_over_network(request.scope)):
        return Actor(LOCAL, Role.ADMIN.value)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(401, "需要访问令牌：请在请求头中提供 Authorization: Bearer <令牌>")
    found = auth_store.find_token(request.app.state.db, hash_token(token.strip()))
    if found is None:
        raise Refusal(401, "访问令牌无效或已被吊销")
    caller = Actor(found["user_name"], found["role"], found["run_id"], found["id"])
    route = (request.method, getattr(request.scope.get("route"), "path", ""))
    if caller.run_id and not _runner_may(request, route, caller.run_id):
        raise Refusal(
            403,
            f"运行令牌只能上报运行 {caller.run_id} 自己的状态、进度、日志、指标与工件，并读取它所在的项目；"
            f"不能调用 {route[0]} {route[1]}",
        )
    if route in RUN_REPORTS and not (caller.run_id or caller.is_admin):
        raise Refusal(
            403,
            f"{caller.user}（{caller.role}）无权写入运行 {request.path_params.get('run_id')} 的状态与数据："
            "运行的状态、进度、日志、指标和工件只由它自己的训练流程（运行令牌）或管理员写入",
        )
    return caller


def arrived_over_network(scope: dict) -> bool:
    """Tokens are required beyond loopback whatever LTM_AUTH says: the socket's own address decides, so an app
    served by any server (not only `ltm api`) holds the rule. In-process transports name no IP address."""
    server = scope.get("server")
    return bool(server) and not _is_loopback_ip(server[0])


@functools.lru_cache(maxsize=256)
def _is_loopback_ip(address: str) -> bool:
    """True for a loopback address, and for a name that is no IP address (an in-process transport); asked on
    every request, so cached."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True


def _runner_may(request: Request, route: tuple[str, str], run_id: str) -> bool:
    """A run token reports for its own run, reads within its run's project, and says who it is."""
    if route in RUNNER_ANYWHERE:
        return True
    project_id = run_store.project_of(request.app.state.db, run_id)
    params = request.path_params
    if project_id is None or params.get("project_id", project_id) != project_id:
        return False
    if route in RUNNER_OWN_RUN:
        return params.get("run_id") == run_id
    method, path = route
    return method == "GET" and path.startswith(PROJECT_PATH)


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
    if not can_work_on(db, caller, project):
        raise Refusal(403, f"{caller.user} 无权{doing}：只有项目负责人、项目成员或管理员可以操作项目 {project['id']}")


def require_owner(caller: Actor, project: dict, doing: str) -> None:
    if not (caller.is_admin or (caller.role == Role.MEMBER and caller.user == project["owner"])):
        raise Refusal(403, f"{caller.user} 无权{doing}：只有项目负责人（{project['owner']}）或管理员可以这样做")


def record_intervention(db: Database, caller: Actor, run: dict, action: str, details: str | None = None) -> None:
    """An admin's write to what a run reports is kept in the audit trail (its own flow's reports are not)."""
    if caller.is_admin and caller.token_id:
        auth_store.record(db, caller.user, action, run["project_id"], run["id"], details=details)
