"""The registered GPU inventory as the console shows it: device, queue and usage tables, and what a run may ask for."""

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from ltm.console import links, ui
from ltm.models import GpuHost, QueuedRun, UsageGrouping, UsageRow

GROUPING_LABELS = {UsageGrouping.PROJECT: "项目", UsageGrouping.USER: "用户", UsageGrouping.GPU_TYPE: "GPU 型号"}
PRIVATE_RUN = "私有项目的运行"


@dataclass(frozen=True)
class Capacity:
    """One GPU type across the registered hosts; `largest_host` bounds what one run may ask for (one host each)."""

    gpu_type: str
    total: int
    free: int
    largest_host: int


def capacities(hosts: list[GpuHost]) -> dict[str, Capacity]:
    """Each registered GPU type, by name; `free` counts idle devices on online hosts only."""
    per_host = Counter((host.name, device.gpu_type) for host in hosts for device in host.devices)
    total = Counter(device.gpu_type for host in hosts for device in host.devices)
    free = Counter(device.gpu_type for host in hosts if host.online for device in host.devices if not device.busy)
    return {
        gpu_type: Capacity(
            gpu_type, count, free[gpu_type], max(n for (_, kind), n in per_host.items() if kind == gpu_type)
        )
        for gpu_type, count in sorted(total.items())
    }


def fmt_memory(memory_mb: int) -> str:
    return ui.fmt_size(memory_mb * 1024 * 1024)


def request_label(gpu_type: str, count: int) -> str:
    return f"{count} × {gpu_type}"


def host_summary(host: GpuHost, offline_after_seconds: float) -> str:
    busy = sum(device.busy for device in host.devices)
    parts = [
        f"工作队列 {host.work_queue}",
        f"GPU 占用 {busy} / 共 {len(host.devices)}",
        f"最近上报 {ui.fmt_time(host.last_seen_at)}",
        f"首次登记 {ui.fmt_time(host.registered_at)}",
    ]
    if not host.online:
        parts.insert(0, f"超过 {offline_after_seconds:g} 秒未上报，设备暂不参与分配")
    return " · ".join(parts)


def devices_frame(host: GpuHost) -> pd.DataFrame:
    """One row per device: index, model, memory and the run that holds it (a link when the caller may see it)."""
    rows = []
    for device in sorted(host.devices, key=lambda d: d.index):
        if not device.busy:
            state, run = "空闲", ui.EMPTY
        elif device.run_id is None:
            state, run = "占用", PRIVATE_RUN
        else:
            state, run = "占用", device.run_name or device.run_id
        rows.append(
            {
                "序号": device.index,
                "型号": device.model,
                "显存": fmt_memory(device.memory_mb),
                "状态": state,
                "运行": run,
                "详情": links.run_url(device.project_id, device.run_id)
                if device.run_id and device.project_id
                else None,
                "设备 ID": device.id,
            }
        )
    return pd.DataFrame(rows)


def queue_frame(queue: list[QueuedRun]) -> pd.DataFrame:
    """The waiting runs in the API's order: each GPU type is its own queue, by priority then creation time."""
    return pd.DataFrame(
        [
            {
                "位置": item.queue_position,
                "运行": item.name,
                "GPU 请求": request_label(item.gpu_type, item.gpu_count),
                "优先级": item.priority,
                "等待原因": item.queue_reason,
                "创建时间": ui.fmt_time(item.created_at),
                "详情": links.run_url(item.project_id, item.run_id) if item.run_id and item.project_id else None,
            }
            for item in queue
        ]
    )


def usage_frame(rows: list[UsageRow], grouping: UsageGrouping) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                GROUPING_LABELS[grouping]: row.label,
                "运行数": row.runs,
                "分配 GPU 小时": row.gpu_hours_allocated,
                "使用 GPU 小时": row.gpu_hours_used,
                "平均利用率": row.gpu_hours_used / row.gpu_hours_allocated if row.gpu_hours_allocated else None,
                "排队等待小时": row.queue_wait_hours,
            }
            for row in rows
        ]
    )
    if grouping == UsageGrouping.PROJECT:
        frame["详情"] = [links.project_url(row.key) if row.key else None for row in rows]
    return frame
