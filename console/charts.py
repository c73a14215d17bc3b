"""Altair charts of server-side downsampled metric series: `last` as the line, min/max as a band."""

import altair as alt
import pandas as pd

from ltm.models import MetricSeries

HEIGHT = 260


def series_frame(series: MetricSeries, run_label: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        [point.model_dump() for point in series.points], columns=["step", "min", "max", "last", "timestamp"]
    )
    frame["metric"] = series.name
    if run_label is not None:
        frame["run"] = run_label
    return frame


def metric_chart(frame: pd.DataFrame, title: str, by_run: bool = False) -> alt.LayerChart:
    """One metric over steps; with `by_run` the frame holds several runs, told apart by colour."""
    color = [alt.Color("run:N", title="运行")] if by_run else []
    band_color = [alt.Color("run:N", legend=None)] if by_run else []
    tooltip = ([alt.Tooltip("run:N", title="运行")] if by_run else []) + [
        alt.Tooltip("step:Q", title="步数"),
        alt.Tooltip("last:Q", title="值", format=".4g"),
        alt.Tooltip("min:Q", title="区间最小", format=".4g"),
        alt.Tooltip("max:Q", title="区间最大", format=".4g"),
    ]
    base = alt.Chart(frame).encode(x=alt.X("step:Q", title="步数"))
    band = base.mark_area(opacity=0.2).encode(*band_color, y=alt.Y("min:Q", title=title), y2="max:Q")
    line = base.mark_line().encode(*color, y=alt.Y("last:Q", title=title), tooltip=tooltip)
    return alt.layer(band, line).properties(title=title, height=HEIGHT).interactive(bind_y=False)
