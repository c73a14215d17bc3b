"""A run and its GPUs on the run page: its place in the queue while it waits, then its devices and their charts."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import charts, links, ui
from ltm.console.charts import ChartOptions
from ltm.console.client import call
from ltm.models import Run, RunStatus

DEVICE_PREFIX = "gpu/"
DEVICE_SERIES = {"utilization": "利用率", "memory_mb": "显存（MiB）"}
VALUE_FORMATS = {"utilization": ".0%", "memory_mb": ",.0f"}


def is_device_metric(name: str) -> bool:
    """Per-device telemetry (`gpu/<i>/utilization`, `gpu/<i>/memory_mb`), shown with the devices, not as metrics."""
    return name.startswith(DEVICE_PREFIX)


def series_name(position: int, kind: str) -> str:
    return f"{DEVICE_PREFIX}{position}/{kind}"


def queue_notice(run: Run) -> None:
    """While the run waits: its place in its GPU type's queue and why it waits, or that its devices are leased."""
    if run.status != RunStatus.QUEUED:
        return
    if run.queue_position is not None:
        st.warning(
            f"**排队等待 GPU：第 {run.queue_position} 位**（同型号队列，优先级 {run.priority}）\n\n"
            f"{run.queue_reason or '等待空闲设备'}",
            icon=":material/hourglass_top:",
        )
        links.page_link(links.to_resources("查看 GPU 资源与排队"))
    elif run.devices:
        st.info(
            f"已分配 {len(run.devices)} 块 GPU（主机 {run.gpu_host or ui.EMPTY}），等待训练进程启动。",
            icon=":material/memory:",
        )


def devices_section(project_id: str, run: Run, options: ChartOptions) -> None:
    """The devices leased to the run (in CUDA order), their latest readings and per-device charts."""
    if not run.devices:
        return
    st.subheader("GPU 设备")
    released = f" · 归还时间 {ui.fmt_time(run.released_at)}" if run.released_at else ""
    st.caption(f"主机 {run.gpu_host or ui.EMPTY} · 分配时间 {ui.fmt_time(run.leased_at)}{released}")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "CUDA 序号": position,
                    "设备 ID": device,
                    "主机": run.gpu_host or ui.EMPTY,
                    "利用率": run.metrics.get(series_name(position, "utilization")),
                    "显存已用（MiB）": run.metrics.get(series_name(position, "memory_mb")),
                }
                for position, device in enumerate(run.devices)
            ]
        ),
        hide_index=True,
        column_config={
            "利用率": st.column_config.ProgressColumn("利用率", min_value=0.0, max_value=1.0, format="percent"),
            "显存已用（MiB）": st.column_config.NumberColumn("显存已用（MiB）", format="%.0f"),
        },
    )
    device_charts(project_id, run, options)


def device_charts(project_id: str, run: Run, options: ChartOptions) -> None:
    """Utilisation and memory history of each device, on the x axis and smoothing of the metric charts."""
    names = [series_name(position, kind) for position in range(len(run.devices)) for kind in DEVICE_SERIES]
    if not any(name in run.metrics for name in names):
        st.caption("设备上报利用率和显存后，会在这里按设备显示曲线。")
        return
    result = call(Client.get_metrics, project_id, run.id, names=names, max_points=500)
    if result is None:
        return
    drawn = {series.name: series for series in result.series if series.points}
    labels = [f"GPU {position}" for position in range(len(run.devices))]
    for position, device in enumerate(run.devices):
        columns = st.columns(len(DEVICE_SERIES))
        for column, (kind, label) in zip(columns, DEVICE_SERIES.items()):
            series = drawn.get(series_name(position, kind))
            if series is None:
                column.caption(f"GPU {position} 没有{label}数据。")
                continue
            title = f"GPU {position} {label}"
            spec = charts.metric_spec(
                charts.series_frame(series, labels[position]),
                title,
                labels,
                ChartOptions(smoothing=options.smoothing, x_axis=options.x_axis),
                legend_title="设备",
                value_format=VALUE_FORMATS[kind],
                legend=False,
            )
            charts.draw(column, spec, key=f"plot_{run.id}_{series.name}")
        st.caption(f"GPU {position}：{device}")
