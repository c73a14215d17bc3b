"""GPU inventory: hosts register and refresh their devices; everyone reads what exists and what is online."""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from ltm import gpus
from ltm.api import gpu_usage
from ltm.api.auth import Caller, require_role
from ltm.api.deps import CurrentSettings, Db, Runs, json_body_only
from ltm.api.errors import BODY_ERRORS, conflict, not_found, responses
from ltm.api.visibility import list_filter
from ltm.limits import MAX_HOST_NAME_LENGTH
from ltm.models import HOST_NAME_PATTERN, GpuHost, HostRegistration, ResourceOverview, ResourceUsage, UsageGrouping
from ltm.settings import Settings
from ltm.store import from_db_time, to_db_time, utc_now
from ltm.store import leases as lease_store
from ltm.store import projects as project_store
from ltm.store import resources as resource_store

router = APIRouter(tags=["GPU 资源"], dependencies=[Depends(json_body_only)])

HostPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_HOST_NAME_LENGTH,
        pattern=HOST_NAME_PATTERN,
        description="主机名（字母、数字、点、下划线、连字符）",
    ),
]


def _shown(host: dict, settings: Settings, holders: dict[str, dict | None] | None = None) -> dict:
    """The host as answered: online or not, and for each leased device its run (None when the caller may not see
    the run's project)."""
    cutoff = utc_now() - timedelta(seconds=settings.host_offline_seconds)
    holders = holders or {}
    devices = []
    for device in host["devices"]:
        holder = holders.get(device["id"])
        devices.append(
            {
                **device,
                "gpu_type": gpus.gpu_type_of(device["model"]),
                "busy": device["id"] in holders,
                "run_id": holder and holder["holder"],
                "project_id": holder and holder["holder_project"],
                "run_name": holder and holder["holder_name"],
            }
        )
    return {**host, "devices": devices, "online": to_db_time(host["last_seen_at"]) >= cutoff}


def _visible_projects(db, caller) -> set[str]:
    """Ids of the projects whose runs the caller may see by name."""
    return {project["id"] for project in project_store.list_(db, **list_filter(db, caller))}


@router.put(
    "/hosts/{host}",
    response_model=GpuHost,
    summary="登记或刷新一台 GPU 主机及其设备（管理员；主机代理 `ltm host` 定期调用，即心跳）",
    description="设备列表整体替换上一次登记的列表。设备 ID 已登记在另一台主机上时答 409。",
    responses=responses(404, 409, *BODY_ERRORS),
)
def register_host(
    host: HostPath, body: HostRegistration, db: Db, runs: Runs, settings: CurrentSettings, caller: Caller
):
    require_role(caller, "admin", "登记 GPU 主机")
    devices = [device.model_dump() for device in body.devices]
    with db.writing():
        taken = resource_store.devices_held_elsewhere(db, host, [device["id"] for device in devices])
        if taken:
            held = "、".join(f"{device_id}（主机 {owner}）" for device_id, owner in taken.items())
            raise conflict(f"devices 中的设备已登记在其他主机上：{held}")
        resource_store.register_host(db, host, body.work_queue, devices, utc_now())
    runs.admit_soon()  # new or freed devices may admit waiting runs
    return _shown(resource_store.list_hosts(db, host)[0], settings)


@router.delete(
    "/hosts/{host}",
    response_model=GpuHost,
    summary="注销一台 GPU 主机（管理员）：删除它的设备并释放这些设备上的租用",
    description="主机已下线、不再回来时使用；仍在上报的主机会在下一次心跳时重新登记。",
    responses=responses(404, 422),
)
def remove_host(host: HostPath, db: Db, runs: Runs, settings: CurrentSettings, caller: Caller):
    """Answers the host as it was registered before it was removed."""
    require_role(caller, "admin", "注销 GPU 主机")
    with db.writing():
        found = resource_store.list_hosts(db, host)
        if not found or not resource_store.remove_host(db, host):
            raise not_found("GPU 主机", host)
    runs.admit_soon()
    return _shown(found[0], settings)


@router.get(
    "/resources",
    response_model=ResourceOverview,
    summary="GPU 主机、设备及其租用，和等待 GPU 的队列",
    description="调用者看不到的私有项目的运行只显示为占用或排队，不显示其 ID 和名称。",
)
def list_resources(db: Db, runs: Runs, settings: CurrentSettings, caller: Caller):
    visible = _visible_projects(db, caller)
    holders = {
        device["id"]: device if device["holder_project"] in visible else None
        for device in lease_store.devices(db)
        if device["holder"]
    }
    queue = []
    waiting = runs.waiting
    for run in lease_store.waiting_runs(db):
        if run["id"] not in waiting:
            continue
        gpu_type, count = gpus.requested(run["resources"])
        shown = run["project_id"] in visible
        queue.append(
            {
                "run_id": run["id"] if shown else None,
                "project_id": run["project_id"] if shown else None,
                "name": run["name"] if shown else "（私有项目的运行）",
                "gpu_type": gpu_type or "任意型号",
                "gpu_count": count,
                "priority": run["priority"] or 0,
                "created_at": run["created_at"],
                "queue_position": waiting[run["id"]].position,
                "queue_reason": waiting[run["id"]].reason,
            }
        )
    return {
        "hosts": [_shown(host, settings, holders) for host in resource_store.list_hosts(db)],
        "queue": queue,
        "offline_after_seconds": settings.host_offline_seconds,
    }


@router.get(
    "/resources/usage",
    response_model=ResourceUsage,
    summary="GPU 用量：分配与按利用率加权的 GPU 小时、排队等待时长，按项目、用户或 GPU 型号汇总",
    description="每个运行的占用与等待时段截取到 [since, 现在]；等待时长从创建到分到 GPU（仍在等待的算到现在）。",
    responses=responses(422),
)
def resource_usage(
    db: Db,
    runs: Runs,
    caller: Caller,
    group_by: Annotated[UsageGrouping, Query(description="project、user 或 gpu_type")] = UsageGrouping.PROJECT,
    since: Annotated[datetime | None, Query(description="统计起点（ISO 8601）；省略表示全部历史")] = None,
):
    until = utc_now()
    start = to_db_time(since) if since else None
    visible = _visible_projects(db, caller)
    used = lease_store.usage(db, start, until, list(runs.waiting))
    return {
        "group_by": group_by,
        "since": from_db_time(start) if start else None,
        "until": from_db_time(until),
        "rows": gpu_usage.summed(used, group_by, start, until, visible),
    }
