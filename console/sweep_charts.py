"""The sweep page's charts: the objective of each finished trial with the best so far, and the hyperparameters of
every trial against its objective as parallel coordinates.

Each spec names its data (see charts.py), so AppTest and the browser both read the frames under these names."""

import json
import math
import re
from typing import Any

import altair as alt
import pandas as pd

from ltm.models import SearchDimension, Sweep, SweepTrial
from ltm.vocabulary import Direction, TrialState

HEIGHT = 380  # the legend and the axis titles take about 120 of it
BEST_DATA = "trials_in_order"
LINES_DATA = "trial_lines"
AXES_DATA = "axis_ticks"
COMPLETED, PRUNED = TrialState.COMPLETED.value, TrialState.PRUNED.value
BEST_LINE = "截至当时最佳"
# Okabe–Ito colours as in charts.py: completed blue, pruned grey, the running best orange.
STATE_COLOURS = {COMPLETED: "#0072B2", PRUNED: "#999999", BEST_LINE: "#E69F00"}
LEGEND = {"orient": "top", "direction": "horizontal", "titleOrient": "left"}
# viridis up to 85 %: its yellow end is hard to see on white. Darker is better (reversed when maximizing).
OBJECTIVE_SCHEME = {"name": "viridis", "extent": [0, 0.85]}


def finished(sweep: Sweep) -> list[SweepTrial]:
    """Completed and pruned trials with an objective, in the order they ended."""
    ended = [t for t in sweep.trials if t.state.value in (COMPLETED, PRUNED) and t.objective is not None]
    return sorted(ended, key=lambda t: (t.updated_at, t.number))


def fmt_param(value: Any) -> str:
    """A hyperparameter's value as JSON writes it, floats to four significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def params_text(params: dict) -> str:
    return "，".join(f"{name}={fmt_param(value)}" for name, value in params.items())


def _better(direction: Direction, a: float, b: float) -> bool:
    return a > b if direction == Direction.MAXIMIZE else a < b


def best_so_far_frame(sweep: Sweep) -> pd.DataFrame:
    """One row per finished trial in the order it ended; `best` is the best completed objective up to then (a
    pruned trial's objective was taken at an earlier step, so it never counts as the best)."""
    rows, best = [], None
    for order, trial in enumerate(finished(sweep), start=1):
        if trial.state == TrialState.COMPLETED and (
            best is None or _better(sweep.objective.direction, trial.objective, best)
        ):
            best = trial.objective
        rows.append(
            {
                "order": order,
                "trial": f"试验 {trial.number}",
                "state": trial.state.value,
                "objective": trial.objective,
                "best": best,
                "ended": trial.updated_at,
                "params": params_text(trial.params),
            }
        )
    return pd.DataFrame(rows, columns=["order", "trial", "state", "objective", "best", "ended", "params"])


def best_so_far_spec(sweep: Sweep) -> dict | None:
    frame = best_so_far_frame(sweep)
    if frame.empty:
        return None
    metric = sweep.objective.metric
    colour = alt.Color(
        "state:N",
        title="试验",
        scale=alt.Scale(domain=list(STATE_COLOURS), range=list(STATE_COLOURS.values())),
        legend=alt.Legend(**LEGEND),
    )
    x = alt.X("order:Q", title="结束顺序（第几个结束的试验）", axis=alt.Axis(tickMinStep=1, format="d"))
    x = x.scale(padding=12, nice=False)
    tooltip = [
        alt.Tooltip("trial:N", title="试验"),
        alt.Tooltip("state:N", title="状态"),
        alt.Tooltip("objective:Q", title=metric, format=".4~g"),
        alt.Tooltip("best:Q", title=BEST_LINE, format=".4~g"),
        alt.Tooltip("ended:T", title="结束时间", format="%Y-%m-%d %H:%M:%S"),
        alt.Tooltip("params:N", title="超参数"),
    ]
    base = alt.Chart(alt.Data(name=BEST_DATA)).encode(x=x)
    y_scale = alt.Scale(zero=False, padding=12)
    line = base.mark_line(interpolate="step-after", strokeWidth=2).encode(
        y=alt.Y("best:Q", title=metric, scale=y_scale), color=alt.datum(BEST_LINE)
    )
    points = base.mark_point(filled=True, size=70, opacity=1).encode(
        y=alt.Y("objective:Q", title=metric, scale=y_scale),
        color=colour,
        shape=alt.Shape(
            "state:N", scale=alt.Scale(domain=[COMPLETED, PRUNED], range=["circle", "triangle"]), legend=None
        ),
        tooltip=tooltip,
    )
    chart = alt.layer(line, points).properties(title="最佳目标变化", height=HEIGHT)
    spec = chart.to_dict()
    spec["datasets"] = {BEST_DATA: frame}
    return spec


# Parallel coordinates: every axis is scaled to 0–1 (a log-scaled range on its logarithm, choices evenly spaced),
# with the real values written beside the axis.


def _position(dimension: SearchDimension, value: Any) -> float | None:
    if dimension.type == "choice":
        values = dimension.values or []
        if value not in values:
            return None
        return 0.5 if len(values) == 1 else values.index(value) / (len(values) - 1)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    low, high, x = dimension.low, dimension.high, float(value)
    if dimension.log:
        if x <= 0:
            return None
        low, high, x = math.log10(low), math.log10(high), math.log10(x)
    return min(max((x - low) / (high - low), 0.0), 1.0)


def compact(value: float) -> str:
    """Two significant digits, exponents without padding: 1e-5, 0.00032, 0.01."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{value:.2g}").replace("e+", "e")


def _ticks(dimension: SearchDimension) -> list[tuple[float, str]]:
    if dimension.type == "choice":
        return [(_position(dimension, value), fmt_param(value)) for value in dimension.values or []]
    low, high = dimension.low, dimension.high
    if dimension.type == "int":
        return [(0.0, f"{low:g}"), (1.0, f"{high:g}")]
    if dimension.log:
        middle = 10 ** ((math.log10(low) + math.log10(high)) / 2)
        return [(0.0, compact(low)), (0.5, compact(middle)), (1.0, compact(high))]
    return [(0.0, f"{low:.3g}"), (0.5, f"{(low + high) / 2:.3g}"), (1.0, f"{high:.3g}")]


def axis_title(name: str, dimension: SearchDimension) -> str:
    return f"{name}（对数）" if dimension.log else name


def parallel_frames(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lines (one row per trial and axis, `y` in 0–1) and the axes' labelled ticks."""
    trials = finished(sweep)
    metric = sweep.objective.metric
    axes = [axis_title(name, dimension) for name, dimension in sweep.space.items()] + [metric]
    objectives = [t.objective for t in trials]
    low, high = (min(objectives), max(objectives)) if objectives else (0.0, 0.0)
    lines = []
    for trial in trials:
        common = {
            "trial": f"试验 {trial.number}",
            "state": trial.state.value,
            "objective": trial.objective,
            "params": params_text(trial.params),
        }
        for (name, dimension), axis in zip(sweep.space.items(), axes):
            y = _position(dimension, trial.params.get(name))
            if y is not None:
                lines.append({**common, "axis": axis, "y": y, "value": fmt_param(trial.params.get(name))})
        spread = (trial.objective - low) / (high - low) if high > low else 0.5
        lines.append({**common, "axis": metric, "y": spread, "value": f"{trial.objective:.4g}"})
    ticks = [
        {"axis": axis, "y": y, "label": label}
        for (name, dimension), axis in zip(sweep.space.items(), axes)
        for y, label in _ticks(dimension)
    ]
    ticks += [{"axis": metric, "y": 0.0, "label": f"{low:.4g}"}, {"axis": metric, "y": 1.0, "label": f"{high:.4g}"}]
    if high == low:
        ticks = [tick for tick in ticks if tick["axis"] != metric] + [{"axis": metric, "y": 0.5, "label": f"{low:.4g}"}]
    columns = ["trial", "state", "objective", "params", "axis", "y", "value"]
    axes_frame = pd.DataFrame(ticks, columns=["axis", "y", "label"]).assign(bottom=0.0, top=1.0)
    return pd.DataFrame(lines, columns=columns), axes_frame


def parallel_spec(sweep: Sweep) -> dict | None:
    lines, ticks = parallel_frames(sweep)
    if lines.empty:
        return None
    metric = sweep.objective.metric
    axes = [axis_title(name, dimension) for name, dimension in sweep.space.items()] + [metric]
    x = alt.X(
        "axis:N",
        sort=axes,
        title=None,
        scale=alt.Scale(domain=axes, paddingOuter=0.1),
        axis=alt.Axis(orient="top", labelAngle=0, domain=False, ticks=False, labelFontSize=12, labelLimit=160),
    )
    y_scale = alt.Scale(domain=[0, 1], padding=10)
    y = alt.Y("y:Q", axis=None, scale=y_scale)
    scheme = {**OBJECTIVE_SCHEME, **({"reverse": True} if sweep.objective.direction == Direction.MAXIMIZE else {})}
    trial_lines = (
        alt.Chart(alt.Data(name=LINES_DATA))
        .mark_line(strokeWidth=2.5)
        .encode(
            x=x,
            y=y,
            detail="trial:N",
            color=alt.Color("objective:Q", title=metric, scale=alt.Scale(scheme=scheme), legend=alt.Legend(**LEGEND)),
            strokeDash=alt.StrokeDash(
                "state:N",
                title="状态",
                scale=alt.Scale(domain=[COMPLETED, PRUNED], range=[[1, 0], [5, 4]]),
                legend=alt.Legend(symbolStrokeWidth=2.5, **LEGEND),
            ),
            opacity=alt.condition(alt.datum.state == PRUNED, alt.value(0.5), alt.value(0.95)),
            tooltip=[
                alt.Tooltip("trial:N", title="试验"),
                alt.Tooltip("state:N", title="状态"),
                alt.Tooltip("objective:Q", title=metric, format=".4~g"),
                alt.Tooltip("params:N", title="超参数"),
            ],
        )
    )
    base = alt.Chart(alt.Data(name=AXES_DATA))
    rules = base.mark_rule(color="#888888").encode(x=x, y=alt.Y("bottom:Q", axis=None, scale=y_scale), y2="top:Q")
    marks = base.mark_tick(color="#888888", thickness=1, size=8, orient="horizontal").encode(x=x, y=y)
    text = {"align": "left", "dx": 5, "fontSize": 11}
    halo = base.mark_text(**text, color="white", stroke="white", strokeWidth=4).encode(x=x, y=y, text="label:N")
    labels = base.mark_text(**text, color="#333333").encode(x=x, y=y, text="label:N")
    chart = alt.layer(rules, marks, trial_lines, halo, labels).properties(
        title="超参数与目标（平行坐标）", height=HEIGHT
    )
    spec = chart.to_dict()
    spec["datasets"] = {LINES_DATA: lines, AXES_DATA: ticks}
    return spec
