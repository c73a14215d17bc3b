"""资源: GPU hosts and who holds each device, the runs waiting for GPUs, whether the API keeps up with the runs'
logs and metrics, and GPU-hours per project, user or type."""

from datetime import datetime, timedelta, timezone

import streamlit as st

from ltm import Client
from ltm.console import ui
from ltm.console.client import call
from ltm.console.gpu_inventory import GROUPING_LABELS, devices_frame, host_summary, queue_frame, usage_frame
from ltm.models import GpuHost, IngestQueue, ResourceOverview, UsageGrouping

REFRESH_SECONDS = 5
PERIODS = {
    "最近 24 小时": timedelta(hours=24),
    "最近 7 天": timedelta(days=7),
    "最近 30 天": timedelta(days=30),
    "全部": None,
}
NO_HOSTS = (
    "还没有登记 GPU 主机，运行不会排队等待 GPU。在 GPU 主机上运行 `ltm host`（读取 NVML，或 `LTM_GPUS` 声明的设备）"
    "登记设备；本机演示可用 `LTM_GPUS=A100:4 make up`（或 `ltm up`）声明模拟 GPU。"
)
NO_DEVICES = (
    "已登记的主机上没有 GPU（未设置 `LTM_GPUS`，也没有通过 NVML 读到设备），运行不会排队等待 GPU。"
    "设置 `LTM_GPUS=A100:4` 后重新启动 `ltm host` 或 `ltm up` 即可声明设备。"
)
LINK_COLUMN = {"详情": st.column_config.LinkColumn("详情", display_text="打开")}


def host_section(host: GpuHost, overview: ResourceOverview) -> None:
    badge = ":green-badge[在线]" if host.online else ":red-badge[离线]"
    st.markdown(f"#### {host.name} {badge}")
    st.caption(host_summary(host, overview.offline_after_seconds))
    if not host.devices:
        st.caption("这台主机没有登记 GPU。")
        return
    st.dataframe(devices_frame(host), hide_index=True, column_config=LINK_COLUMN)


def inventory_and_queue() -> None:
    overview = call(Client.list_resources)
    if overview is None:
        return
    st.subheader("GPU 主机")
    if not overview.hosts:
        st.info(NO_HOSTS)
    elif not any(host.devices for host in overview.hosts):
        st.info(NO_DEVICES)
    for host in overview.hosts:
        host_section(host, overview)
    st.subheader("等待 GPU 的运行")
    if not overview.queue:
        st.caption("没有等待 GPU 的运行。")
        return
    st.caption("每种 GPU 型号一个队列，队内按优先级（高者先）和创建时间排序；队首等到设备前，后面的运行不会越过它。")
    st.dataframe(queue_frame(overview.queue), hide_index=True, column_config=LINK_COLUMN)


def ingest_section() -> None:
    health = call(Client.health)
    if health is None or health.ingest is None:
        return
    st.subheader("日志与指标写入")
    st.caption(ingest_summary(health.ingest))


def ingest_summary(ingest: IngestQueue) -> str:
    waiting = f"排队中 {ingest.queued_batches} 个批次"
    window = ingest.last_minute
    if window is None or not window.commits:
        return f"最近一分钟没有写入 · {waiting}"
    return (
        f"最近 {window.seconds} 秒：{window.commits} 次组提交，写入 {window.batches} 个批次或报告 · "
        f"一次组提交耗时中位数 {window.commit_ms_p50:g} ms、99 分位 {window.commit_ms_p99:g} ms · "
        f"批次等待写入中位数 {window.wait_ms_p50:g} ms、99 分位 {window.wait_ms_p99:g} ms · {waiting}。"
        "应答时间约为等待加一次组提交；等待持续上升说明 API 跟不上写入。"
    )


def usage_section() -> None:
    st.subheader("GPU 使用量")
    grouping_column, period_column = st.columns(2)
    grouping = grouping_column.selectbox(
        "分组", list(GROUPING_LABELS), format_func=GROUPING_LABELS.get, key="usage_group_by"
    )
    period = period_column.selectbox("时间范围", list(PERIODS), index=1, key="usage_period")
    since = datetime.now(timezone.utc) - PERIODS[period] if PERIODS[period] else None
    usage = call(Client.resource_usage, group_by=grouping.value, since=since)
    if usage is None:
        return
    st.caption(
        f"统计区间 {ui.fmt_time(usage.since) if usage.since else '最早记录'} 至 {ui.fmt_time(usage.until)} · "
        "分配 GPU 小时 = 设备数 × 占用时长；使用 GPU 小时 = 分配 GPU 小时 × 设备平均利用率"
    )
    if not usage.rows:
        st.caption("所选时间范围内没有 GPU 使用或排队记录。")
        return
    hours = {
        label: st.column_config.NumberColumn(label, format="%.2f")
        for label in ("分配 GPU 小时", "使用 GPU 小时", "排队等待小时")
    }
    st.dataframe(
        usage_frame(usage.rows, UsageGrouping(usage.group_by)),
        hide_index=True,
        column_config={
            **hours,
            "平均利用率": st.column_config.ProgressColumn("平均利用率", min_value=0.0, max_value=1.0, format="percent"),
            **LINK_COLUMN,
        },
    )


st.title("资源")
st.fragment(inventory_and_queue, run_every=REFRESH_SECONDS)()
st.fragment(ingest_section, run_every=REFRESH_SECONDS)()
st.divider()
usage_section()
