"""The live part of the run page: status, progress, latest metrics, charts and artifacts.

Refreshed while the run is active."""

import streamlit as st

from ltm import Client
from ltm.console import charts, pickers, run_actions, run_gpus, ui
from ltm.console.client import call
from ltm.models import Run, RunStatus

REFRESH_SECONDS = 2
POINT_CHOICES = [250, 500, 1000, 2000]
METRICS_PER_ROW = 6


def live_section(project_id: str, run_id: str, active: bool) -> None:
    """Render the live area; it reruns itself every REFRESH_SECONDS only while the run was active at page render."""
    st.fragment(_live, run_every=REFRESH_SECONDS if active else None)(project_id, run_id, active)


def _live(project_id: str, run_id: str, active: bool) -> None:
    run = pickers.fresh_run(project_id, run_id)
    if run is None:
        return
    if active and run.status.is_terminal:
        st.rerun()
    status_panel(run)
    run_gpus.queue_notice(run)
    latest_metrics(run)
    options = metric_charts(project_id, run)
    run_gpus.devices_section(project_id, run, options)
    st.subheader("工件")
    run_actions.artifacts_section(run)


def status_panel(run: Run) -> None:
    status, progress, gpu = st.columns([1, 4, 1], vertical_alignment="center")
    with status:
        ui.status_badge(run.status)
    steps = f"第 {run.current_step} / {run.total_steps} 步" if run.total_steps else f"第 {run.current_step} 步"
    progress.progress(min(max(run.progress, 0.0), 1.0), text=f"进度 {run.progress:.0%} · {steps}")
    gpu.metric(
        "GPU 利用率",
        ui.EMPTY if run.status.is_terminal else ui.fmt_percent(run.gpu_utilization),
        help="运行结束后不再显示（设备已归还）；各设备的历史见下方 GPU 设备曲线",
    )
    stamps = [("创建", run.created_at), ("开始", run.started_at), ("更新", run.updated_at), ("结束", run.finished_at)]
    if run.cancelled_at:
        stamps.append(("取消", run.cancelled_at))
    st.caption(" · ".join(f"{label}时间 {ui.fmt_time(value)}" for label, value in stamps))
    if run.message:
        (st.error if run.status == RunStatus.FAILED else st.caption)(f"说明：{run.message}")


def training_metrics(run: Run) -> list[str]:
    """The run's metric names, without the per-device GPU series that the devices section shows."""
    return sorted(name for name in run.metrics if not run_gpus.is_device_metric(name))


def latest_metrics(run: Run) -> None:
    st.subheader("最新指标")
    names = training_metrics(run)
    if not names:
        st.caption("暂无指标。")
        return
    items = [(name, run.metrics[name]) for name in names]
    for start in range(0, len(items), METRICS_PER_ROW):
        for column, (name, value) in zip(st.columns(METRICS_PER_ROW), items[start : start + METRICS_PER_ROW]):
            column.metric(name, ui.fmt_metric(value))


def metric_charts(project_id: str, run: Run) -> charts.ChartOptions:
    """The run's metric charts; returns the chart options chosen here, which the device charts follow too."""
    st.subheader("指标曲线")
    names = training_metrics(run)
    if not names:
        st.caption("运行上报指标后会在这里显示曲线。")
        return charts.ChartOptions()
    pick, points = st.columns([4, 1])
    chosen = pick.multiselect("显示的指标", names, key=f"series_{run.id}", placeholder="默认显示全部指标")
    max_points = points.selectbox(
        "每条曲线最多点数", POINT_CHOICES, index=POINT_CHOICES.index(1000), key=f"points_{run.id}"
    )
    options = charts.options_controls(f"chart_{run.id}")
    everything = len(names) == len(run.metrics)  # then ask for all series rather than name each in the URL
    wanted = chosen or (None if everything else names)
    result = call(Client.get_metrics, project_id, run.id, names=wanted, max_points=max_points)
    if result is None:
        return options
    drawn = [series for series in result.series if series.points]
    for start in range(0, len(drawn), 2):
        for column, series in zip(st.columns(2), drawn[start : start + 2]):
            frame = charts.series_frame(series, series.name)
            spec = charts.metric_spec(frame, series.name, [series.name], options, legend_title="指标")
            charts.draw(column, spec, key=f"plot_{run.id}_{series.name}")
            column.caption(
                f"{series.name}：共 {series.total_points} 个点，显示 {len(series.points)} 个（服务端降采样）"
            )
    return options
