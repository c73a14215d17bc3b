"""Charts of server-side downsampled metric series: `last` as the line, min/max as a band, one colour per series.

Each chart's Vega-Lite spec names its data instead of embedding it, so a refresh that only brings new points leaves
the spec unchanged: the browser then swaps the data in the drawn view and keeps the user's zoom and pan."""

from dataclasses import dataclass

import altair as alt
import pandas as pd
import streamlit as st

from ltm.models import MetricSeries

HEIGHT = 260
LEGEND = {
    "orient": "top",
    "direction": "horizontal",
    "titleOrient": "left",
    "symbolType": "stroke",
    "symbolOpacity": 1,
    "symbolStrokeWidth": 3,
}
LEGEND_HEIGHT = 30  # Streamlit fits the legend into the chart's height: keep the plot as tall as without one
DATA_NAME = "series"
ZOOM = "zoom"
# Okabe–Ito, colour-blind safe and readable on light and dark backgrounds (black replaced by grey).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
PAD = 12  # pixels between the plot's edges and the outermost points, so points at the ends are drawn whole
FEW_POINTS = 20  # a series with at most this many points also shows its points, so a single one is visible
STEPS, ELAPSED, CLOCK = "步数", "相对时间", "时钟时间"
X_AXES = (STEPS, ELAPSED, CLOCK)
COLUMNS = ["step", "min", "max", "last", "timestamp"]


@dataclass(frozen=True)
class ChartOptions:
    smoothing: float = 0.0  # EMA weight 0–0.99, as in TensorBoard
    log_scale: bool = False
    x_axis: str = STEPS


def options_controls(key: str) -> ChartOptions:
    """Smoothing, log scale and x axis for the charts below; the choices live in the session under `key`."""
    smooth, log, axis = st.columns([3, 1, 2], vertical_alignment="bottom")
    smoothing = smooth.slider(
        "平滑", 0.0, 0.99, 0.0, 0.01, key=f"{key}_smoothing", help="指数移动平均的权重：0 不平滑，越接近 1 越平滑"
    )
    log_scale = log.toggle("对数坐标", key=f"{key}_log", help="纵轴取对数；不大于 0 的值不画")
    x_axis = axis.segmented_control("横轴", X_AXES, default=STEPS, required=True, key=f"{key}_x")
    st.caption("在图上滚动鼠标滚轮缩放横轴、拖动平移、双击复原；自动刷新不会重置缩放。")
    return ChartOptions(smoothing, log_scale, x_axis)


def draw(container, spec: dict, key: str) -> None:
    """Draw under a fixed key, the zoom declared as the chart's selection.

    A refresh that changes only the data keeps the drawn view, but Streamlit clears scale-bound params when the data
    changes unless they are selections it tracks; as a selection the zoom is kept in the session and restored."""
    container.vega_lite_chart(spec=spec, width="stretch", key=key, on_select="rerun", selection_mode=[ZOOM])


def series_frame(series: MetricSeries, label: str) -> pd.DataFrame:
    frame = pd.DataFrame([point.model_dump() for point in series.points], columns=COLUMNS)
    frame["series"] = label
    return frame


def colours(labels: list[str]) -> dict[str, str]:
    """Each label its palette colour by position: the same run keeps its colour in every chart of a page."""
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(labels)}


def prepare(frame: pd.DataFrame, options: ChartOptions) -> pd.DataFrame:
    """The drawn values: smoothed `value`, minutes since each series' first point, and whether to show points."""
    frame = frame.sort_values(["series", "step"]).reset_index(drop=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    groups = frame.groupby("series", sort=False)
    frame["value"] = frame["last"]
    if options.smoothing > 0:
        alpha = 1 - options.smoothing
        frame["value"] = groups["last"].transform(lambda values: values.ewm(alpha=alpha, adjust=True).mean())
    frame["elapsed"] = (frame["timestamp"] - groups["timestamp"].transform("min")).dt.total_seconds() / 60
    frame["few"] = groups["step"].transform("size") <= FEW_POINTS
    if options.log_scale:
        frame = frame[(frame["value"] > 0) & (frame["last"] > 0)]
        frame = frame.assign(min=frame["min"].where(frame["min"] > 0, frame["last"]))
    return frame


def metric_spec(
    frame: pd.DataFrame,
    title: str,
    labels: list[str],
    options: ChartOptions = ChartOptions(),
    legend_title: str = "运行",
    value_format: str = ".4~g",
    legend: bool | None = None,
) -> dict:
    """A Vega-Lite spec of `frame` (from `series_frame`, one or more series) with the data under DATA_NAME.

    `labels` fixes the colours (see `colours`); the legend shows when there are several, unless `legend` says."""
    data = prepare(frame, options)
    shown = len(labels) > 1 if legend is None else legend
    spec = _chart(title, labels, options, legend_title, value_format, shown).to_dict()
    spec["datasets"] = {DATA_NAME: data}
    return spec


def _x(options: ChartOptions) -> alt.X:
    x_scale = alt.Scale(padding=PAD, nice=False)
    if options.x_axis == CLOCK:
        return alt.X("timestamp:T", title="时间", axis=alt.Axis(format="%H:%M:%S"), scale=x_scale)
    if options.x_axis == ELAPSED:
        return alt.X("elapsed:Q", title="相对时间（分钟）", axis=alt.Axis(format=",~r"), scale=x_scale)
    return alt.X("step:Q", title="步数", axis=alt.Axis(format=",~r"), scale=x_scale)


def _color(labels: list[str], legend: alt.Legend | None = None) -> alt.Color:
    mapping = colours(labels)
    return alt.Color("series:N", scale=alt.Scale(domain=list(mapping), range=list(mapping.values())), legend=legend)


def _tooltip(legend_title: str, value_format: str, smoothed: bool) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("series:N", title=legend_title),
        alt.Tooltip("step:Q", title="步数"),
        alt.Tooltip("timestamp:T", title="时间", format="%Y-%m-%d %H:%M:%S"),
        alt.Tooltip("last:Q", title="值", format=value_format),
        *([alt.Tooltip("value:Q", title="平滑后", format=value_format)] if smoothed else []),
        alt.Tooltip("min:Q", title="区间最小", format=value_format),
        alt.Tooltip("max:Q", title="区间最大", format=value_format),
    ]


def _chart(
    title: str, labels: list[str], options: ChartOptions, legend_title: str, value_format: str, legend: bool
) -> alt.LayerChart:
    smoothed = options.smoothing > 0
    shown = alt.Legend(title=legend_title, **LEGEND) if legend else None
    y_scale = alt.Scale(type="log" if options.log_scale else "linear", zero=False, padding=PAD)
    y_axis = alt.Axis(format=value_format)
    tooltip = _tooltip(legend_title, value_format, smoothed)
    base = alt.Chart(alt.Data(name=DATA_NAME)).encode(x=_x(options))
    color = _color(labels, shown)  # the same legend on every layer, or Vega-Lite drops it
    band = base.mark_area(opacity=0.15).encode(
        color, y=alt.Y("min:Q", title=title, scale=y_scale, axis=y_axis), y2="max:Q"
    )
    y = alt.Y("value:Q", title=title, scale=y_scale, axis=y_axis)
    raw = base.mark_line(opacity=0.3).encode(color, y=alt.Y("last:Q", scale=y_scale))
    line = base.mark_line().encode(color, y=y, tooltip=tooltip)
    zoom = alt.selection_interval(bind="scales", encodings=["x"], name=ZOOM)
    points = (
        base.mark_point(filled=True, size=80, opacity=1)
        .encode(color, y=y, tooltip=tooltip)
        .transform_filter("datum.few")
    )
    layers = [band, *([raw] if smoothed else []), line.add_params(zoom), points]
    return alt.layer(*layers).properties(title=title, height=HEIGHT + (LEGEND_HEIGHT if legend else 0))
