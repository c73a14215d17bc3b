"""GPU inventory: hosts register and refresh their devices; everyone reads what exists and what is online."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ltm.api.auth import Caller, require_role
from ltm.api.deps import CurrentSettings, Db, json_body_only
from ltm.api.errors import BODY_ERRORS, conflict, responses
from ltm.limits import MAX_HOST_NAME_LENGTH
from ltm.models import HOST_NAME_PATTERN, GpuHost, HostRegistration, ResourceOverview
from ltm.settings import Settings
from ltm.store import resources as resource_store
from ltm.store import to_db_time, utc_now

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


def _shown(host: dict, settings: Settings) -> dict:
    cutoff = utc_now() - timedelta(seconds=settings.host_offline_seconds)
    return {**host, "online": to_db_time(host["last_seen_at"]) >= cutoff}


@router.put(
    "/hosts/{host}",
    response_model=GpuHost,
    summary="登记或刷新一台 GPU 主机及其设备（管理员；主机代理 `ltm host` 定期调用，即心跳）",
    description="设备列表整体替换上一次登记的列表。设备 ID 已登记在另一台主机上时答 409。",
    responses=responses(404, 409, *BODY_ERRORS),
)
def register_host(host: HostPath, body: HostRegistration, db: Db, settings: CurrentSettings, caller: Caller):
    require_role(caller, "admin", "登记 GPU 主机")
    devices = [device.model_dump() for device in body.devices]
    with db.writing():
        taken = resource_store.devices_held_elsewhere(db, host, [device["id"] for device in devices])
        if taken:
            held = "、".join(f"{device_id}（主机 {owner}）" for device_id, owner in taken.items())
            raise conflict(f"devices 中的设备已登记在其他主机上：{held}")
        resource_store.register_host(db, host, body.pool, devices, utc_now())
    return _shown(resource_store.list_hosts(db, host)[0], settings)


@router.get("/resources", response_model=ResourceOverview, summary="GPU 主机与设备清单")
def list_resources(db: Db, settings: CurrentSettings):
    return {
        "hosts": [_shown(host, settings) for host in resource_store.list_hosts(db)],
        "offline_after_seconds": settings.host_offline_seconds,
    }
