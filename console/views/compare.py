import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import charts, diffing, links, ui
from ltm.console.client import call, require
from ltm.models import RunOverview

MAX_POINTS = 500


def choose_project() -> str:
    projects = require(Client.list_projects)
    if not projects:
        st.info("还没有项目。")
        links.page_link(links.to_projects("去创建项目"))
        st.stop()
    names = {p.id: p.name for p in projects}
    wanted = st.query_params.get("project_id")
    index = list(names).index(wanted) if wanted in names else None
    chosen = st.selectbox(
        "项目", list(names), index=index, format_func=names.get, placeholder="请选择项目", key="compare_project"
    )
    if chosen is None:
        st.stop()
    st.query_params["project_id"] = chosen
    return chosen


def choose_runs(project_id: str, runs: list[RunOverview], labels: dict[str, str]) -> list[RunOverview]:
    wanted = [r for r in st.query_params.get("runs", "").split(",") if r in labels]
    chosen = st.multiselect(
        "运行（至少选择两个）",
        list(labels),
        default=wanted,
        format_func=labels.get,
        key=f"compare_runs_{project_id}",
        placeholder="请选择运行",
    )
    st.query_params["runs"] = ",".join(chosen)
    by_id = {r.id: r for r in runs}
    return [by_id[run_id] for run_id in chosen]


def configuration(run: RunOverview) -> dict:
    return {
        "模型": run.model,
        "数据集": run.dataset,
        **diffing.flatten(run.resources, "资源."),
        **diffing.flatten(run.hyperparameters),
    }


def hyperparameter_diff(runs: list[RunOverview], labels: dict[str, str]) -> None:
    st.subheader("超参数差异")
    show_all = st.checkbox("显示全部超参数", key="compare_show_all")
    rows = diffing.side_by_side(
        {labels[r.id]: configuration(r) for r in runs}, key_label="超参数", only_differences=not show_all
    )
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.info("所选运行的超参数与配置完全相同。")


def final_metrics(runs: list[RunOverview], labels: dict[str, str]) -> None:
    st.subheader("最终指标")
    names = sorted({name for run in runs for name in run.metrics})
    rows = [
        {"指标": "状态", **{labels[r.id]: r.status.value for r in runs}},
        {"指标": "进度", **{labels[r.id]: ui.fmt_percent(r.progress) for r in runs}},
    ]
    rows += [{"指标": name, **{labels[r.id]: ui.fmt_metric(r.metrics.get(name)) for r in runs}} for name in names]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def metric_curves(project_id: str, runs: list[RunOverview], labels: dict[str, str]) -> None:
    """One chart per metric with a line per run; each run keeps its colour in every chart (see the legend)."""
    st.subheader("指标曲线")
    names = sorted({name for run in runs for name in run.metrics})
    if not names:
        st.caption("所选运行还没有指标。")
        return
    chosen = st.multiselect("显示的指标", names, key="compare_metrics", placeholder="默认显示全部指标") or names
    options = charts.options_controls("compare_chart")
    run_labels = [labels[run.id] for run in runs]
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in chosen}
    for run in runs:
        result = call(Client.get_metrics, project_id, run.id, names=chosen, max_points=MAX_POINTS)
        for series in result.series if result else []:
            if series.name in frames and series.points:
                frames[series.name].append(charts.series_frame(series, labels[run.id]))
    drawn = [(name, pd.concat(parts, ignore_index=True)) for name, parts in frames.items() if parts]
    for start in range(0, len(drawn), 2):
        for column, (name, frame) in zip(st.columns(2), drawn[start : start + 2]):
            spec = charts.metric_spec(frame, name, run_labels, options, legend=True)
            charts.draw(column, spec, key=f"compare_plot_{name}")


st.title("运行对比")
project_id = choose_project()
runs = require(Client.list_runs, project_id)
labels = diffing.unique_labels([(r.id, r.name) for r in runs])
selected = choose_runs(project_id, runs, labels)
if len(selected) < 2:
    st.info("请选择至少两个运行进行对比。")
    st.stop()
for run in selected:
    links.page_link(links.to_run(project_id, run.id, f"{labels[run.id]}（{run.status.value}）"))
hyperparameter_diff(selected, labels)
final_metrics(selected, labels)
metric_curves(project_id, selected, labels)
