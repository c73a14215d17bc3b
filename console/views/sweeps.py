"""The 调参 page: a project's sweeps and the 新建调参 form, or one sweep (`sweep_id` in the address) with its
progress, the steps pruning and promotion saved, its trials best first, two charts, and what to do with the best
trial. A running sweep's part of the page refreshes itself."""

import json

import pandas as pd
import streamlit as st

from ltm import ApiError, Client
from ltm.console import links, pickers, run_actions, run_form, sweep_charts, ui
from ltm.console.client import FAILURES, call, error_text, get_client, require
from ltm.models import Artifact, Project, ProjectStatus, Run, Sweep, SweepSummary, SweepTrial
from ltm.vocabulary import Direction, Pruner, Sampler, SweepStatus, TagValue, TrialState

REFRESH_SECONDS = 2
COMPARED = 3  # the best trial and the next best ones, one click away on the compare page
STOP_KEY = "confirm_stop_sweep"
STATUS_COLORS = {
    SweepStatus.RUNNING: "blue",
    SweepStatus.COMPLETED: "green",
    SweepStatus.CANCELLED: "violet",
    SweepStatus.FAILED: "red",
}
DIRECTIONS = {Direction.MINIMIZE.value: "最小化", Direction.MAXIMIZE.value: "最大化"}
SAMPLERS = {
    Sampler.TPE.value: "tpe（贝叶斯优化）",
    Sampler.RANDOM.value: "random（随机）",
    Sampler.GRID.value: "grid（网格，只用于 choice 与 int）",
}
PRUNERS = {
    Pruner.ASHA.value: "asha（异步逐层淘汰）",
    Pruner.HYPERBAND.value: "hyperband",
    Pruner.MEDIAN.value: "median（低于中位数即停）",
    Pruner.NONE.value: "none（不剪枝，每个试验训练到底）",
}
DIMENSION_TYPES = {"float": "float 小数", "int": "int 整数", "choice": "choice 候选值"}
FIRST_DIMENSION = {"name": "learning_rate", "type": "float", "low": "1e-5", "high": "1e-2", "log": True}


def objective_text(summary: SweepSummary) -> str:
    return f"{summary.objective.metric}（{DIRECTIONS[summary.objective.direction.value]}）"


def status_badge(status: SweepStatus) -> None:
    st.badge(status.value, color=STATUS_COLORS[status])


# ---- the project's sweeps


def sweeps_page(project: Project) -> None:
    st.title(f"调参 · {project.name}")
    back, _ = st.columns([1, 3])
    with back:
        links.page_link(links.to_project(project.id, f"项目：{project.name}"))
    ui.show_flash()
    sweeps = require(Client.list_sweeps, project.id)
    if sweeps:
        sweeps_table(project.id, sweeps)
    else:
        st.info("这个项目还没有调参。在下面新建一个：在搜索空间内自动尝试多组超参数，提前停止表现差的试验。")
    st.subheader("新建调参")
    create_form(project)


def sweeps_table(project_id: str, sweeps: list[SweepSummary]) -> None:
    frame = pd.DataFrame(
        [
            {
                "名称": links.named_sweep_url(project_id, s.id, s.name),
                "状态": s.status.value,
                "目标": objective_text(s),
                "试验": f"{s.trial_count} / {s.max_trials}",
                "最佳目标": s.best_objective,
                "采样器": s.sampler.value,
                "剪枝器": s.pruner.value,
                "创建者": s.created_by or ui.EMPTY,
                "创建时间": ui.fmt_time(s.created_at),
                "结束时间": ui.fmt_time(s.finished_at),
            }
            for s in sweeps
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        placeholder=ui.EMPTY,
        column_config={
            "名称": st.column_config.LinkColumn("名称", display_text=links.NAME_IN_URL, help="点击打开调参详情"),
            "试验": st.column_config.TextColumn("试验", help="已开始的试验数 / 最多试验数"),
            "最佳目标": st.column_config.NumberColumn("最佳目标", format="%.4g", help="训练到底的试验中最好的目标值"),
        },
        key="sweeps_table",
    )


# ---- 新建调参


def _generation(project: Project) -> str:
    """Widget keys of the form; a new generation after a sweep is created gives the user an empty form."""
    return f"{project.id}_{st.session_state.get(f'sweep_form_{project.id}', 0)}"


def create_form(project: Project) -> None:
    if project.status == ProjectStatus.ARCHIVED:
        st.info("项目已归档，恢复后才能新建调参。")
        return
    gen = _generation(project)
    name = st.columns(2)[0].text_input("调参名称 *", key=f"sweep_name_{gen}", max_chars=200)
    template = template_inputs(project, gen)
    st.markdown("**搜索空间**")
    st.caption(
        "每行一个要搜索的超参数：float、int 取值在下限与上限之间（勾选“对数”则在对数刻度上采样，适合学习率），"
        "choice 从候选值中选（用逗号分隔，如 8, 16, 32）。搜索空间的值覆盖上面的固定超参数。"
    )
    rows = space_rows(gen)
    settings = search_settings(gen)
    if st.button("创建调参", type="primary", key="sweep_create_submit"):
        create(project, name, template, rows, settings)


def template_inputs(project: Project, gen: str) -> dict:
    """The run template as typed: every trial is a run with these fields."""
    trainers = {t.name: t for t in call(Client.list_trainers) or []}
    default_trainer = project.default_trainer or "simulated"
    names = list(trainers) or [default_trainer]
    model_column, data_column, trainer_column = st.columns(3)
    model = model_column.text_input("模型 *", value=project.base_model or "", key=f"sweep_model_{gen}")
    dataset = data_column.text_input("数据集 *", key=f"sweep_dataset_{gen}")
    trainer = trainer_column.selectbox(
        "训练器",
        names,
        index=names.index(default_trainer) if default_trainer in names else 0,
        format_func=lambda n: f"{n} — {trainers[n].description}" if n in trainers else n,
        key=f"sweep_trainer_{gen}",
    )
    hyperparameters = st.text_area(
        "固定超参数（JSON 对象，已填入项目默认值）",
        value=ui.pretty_json(project.default_hyperparameters),
        height=120,
        help="每个试验都用这些值；搜索空间中的超参数覆盖这里的值。删去的键不再使用项目默认值，改用训练器默认值",
        key=f"sweep_hp_{gen}",
    )
    return {"model": model, "dataset": dataset, "trainer": trainer, "hyperparameters": hyperparameters}


def space_rows(gen: str) -> list[dict]:
    """The search space editor: one row of inputs per hyperparameter, rows added and removed with buttons."""
    ids_key = f"sweep_rows_{gen}"
    ids = st.session_state.setdefault(ids_key, [0])
    rows = [space_row(gen, row_id, first=index == 0) for index, row_id in enumerate(ids)]
    if st.button("添加超参数", icon=":material/add:", key=f"sweep_dim_add_{gen}"):
        st.session_state[ids_key] = [*ids, max(ids, default=-1) + 1]
        st.rerun()
    return rows


def space_row(gen: str, row_id: int, first: bool) -> dict:
    key = f"{gen}_{row_id}"
    prefill = FIRST_DIMENSION if row_id == 0 else {}
    shown = "visible" if first else "collapsed"
    name, kind, low, high, log, values, remove = st.columns([3, 2, 2, 2, 1, 3, 1], vertical_alignment="bottom")
    row = {
        "name": name.text_input(
            "超参数", value=prefill.get("name", ""), key=f"sweep_dim_name_{key}", label_visibility=shown
        ),
        "type": kind.selectbox(
            "类型",
            list(DIMENSION_TYPES),
            index=list(DIMENSION_TYPES).index(prefill.get("type", "float")),
            format_func=DIMENSION_TYPES.get,
            key=f"sweep_dim_type_{key}",
            label_visibility=shown,
        ),
    }
    choice = row["type"] == "choice"
    row["low"] = low.text_input(
        "下限", value=prefill.get("low", ""), disabled=choice, key=f"sweep_dim_low_{key}", label_visibility=shown
    )
    row["high"] = high.text_input(
        "上限", value=prefill.get("high", ""), disabled=choice, key=f"sweep_dim_high_{key}", label_visibility=shown
    )
    row["log"] = log.checkbox(
        "对数", value=prefill.get("log", False), disabled=choice, key=f"sweep_dim_log_{key}", label_visibility=shown
    )
    row["values"] = values.text_input(
        "候选值（逗号分隔）",
        disabled=not choice,
        placeholder="8, 16, 32" if choice else "",
        key=f"sweep_dim_values_{key}",
        label_visibility=shown,
    )
    if remove.button("删除", help="删除这一行", key=f"sweep_dim_del_{key}"):
        ids_key = f"sweep_rows_{gen}"
        st.session_state[ids_key] = [i for i in st.session_state[ids_key] if i != row_id]
        st.rerun()
    return row


def search_settings(gen: str) -> dict:
    st.markdown("**目标与搜索方式**")
    metric, direction, sampler, pruner = st.columns([2, 2, 2, 2])
    values = {
        "metric": metric.text_input("目标指标 *", value="eval_loss", key=f"sweep_metric_{gen}"),
        "direction": direction.radio(
            "方向", list(DIRECTIONS), format_func=DIRECTIONS.get, horizontal=True, key=f"sweep_direction_{gen}"
        ),
        "sampler": sampler.selectbox("采样器", list(SAMPLERS), format_func=SAMPLERS.get, key=f"sweep_sampler_{gen}"),
        "pruner": pruner.selectbox("剪枝器", list(PRUNERS), format_func=PRUNERS.get, key=f"sweep_pruner_{gen}"),
    }
    columns = st.columns(5)
    for column, (field, label, default, help_text) in zip(
        columns,
        [
            ("max_trials", "最多试验数", 8, "1 到 1000"),
            ("parallelism", "同时进行的试验数", 2, "1 到 64；每个试验排队等 GPU，与普通运行一样"),
            ("reduction_factor", "淘汰比例", 3, "2 到 8：每层约保留 1/淘汰比例 的试验（asha、hyperband）"),
            ("min_epochs", "第一层轮数", 1, "1 到 1000：第一层训练的轮数，之后每层乘以淘汰比例"),
        ],
    ):
        values[field] = int(
            column.number_input(label, value=default, step=1, help=help_text, key=f"sweep_{field}_{gen}")
        )
    seed = columns[4].number_input(
        "随机种子（可选）",
        value=None,
        step=1,
        placeholder="不填则每次不同",
        help="相同种子得到相同的试验参数序列",
        key=f"sweep_seed_{gen}",
    )
    values["seed"] = None if seed is None else int(seed)
    return values


def parse_number(text: str, label: str, kind: str) -> float | int:
    text = text.strip()
    if not text:
        raise ui.InputError(f"请填写{label}")
    try:
        value = float(text)
    except ValueError:
        raise ui.InputError(f"{label}不是数字：{text}") from None
    return int(value) if kind == "int" and value.is_integer() else value


def parse_choice(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def parse_values(text: str, label: str) -> list:
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            raise ui.InputError(f"{label}不是合法的 JSON 列表") from None
        return values
    values = [parse_choice(item.strip()) for item in text.replace("，", ",").split(",") if item.strip()]
    if not values:
        raise ui.InputError(f"请填写{label}，用逗号分隔，例如 8, 16, 32")
    return values


def space(rows: list[dict]) -> dict:
    """The `space` of the request body from the editor's rows; rows without a name are left out."""
    found: dict[str, dict] = {}
    for row in rows:
        name = row["name"].strip()
        if not name:
            continue
        if name in found:
            raise ui.InputError(f"搜索空间中 {name} 出现了不止一次")
        if row["type"] == "choice":
            found[name] = {"type": "choice", "values": parse_values(row["values"], f"{name} 的候选值")}
        else:
            found[name] = {
                "type": row["type"],
                "low": parse_number(row["low"], f"{name} 的下限", row["type"]),
                "high": parse_number(row["high"], f"{name} 的上限", row["type"]),
                "log": row["log"],
            }
    if not found:
        raise ui.InputError("请在搜索空间中至少填写一个超参数")
    return found


def request_body(project: Project, name: str, template: dict, rows: list[dict], settings: dict) -> dict:
    box = ui.parse_json_object(template["hyperparameters"], "固定超参数")
    return {
        "name": ui.required_text(name, "调参名称"),
        "template": {
            "model": ui.required_text(template["model"], "模型"),
            "dataset": ui.required_text(template["dataset"], "数据集"),
            "trainer": template["trainer"],
            "hyperparameters": run_form.run_values(box, project.default_hyperparameters),
        },
        "space": space(rows),
        "objective": {"metric": ui.required_text(settings["metric"], "目标指标"), "direction": settings["direction"]},
        **{key: settings[key] for key in ("sampler", "pruner", "max_trials", "parallelism", "reduction_factor")},
        "min_epochs": settings["min_epochs"],
        "seed": settings["seed"],
    }


def create(project: Project, name: str, template: dict, rows: list[dict], settings: dict) -> None:
    try:
        body = request_body(project, name, template, rows, settings)
    except ui.InputError as exc:
        st.error(f"未创建调参：{exc}")
        return
    try:
        sweep = get_client().create_sweep(project.id, **body)
    except FAILURES as exc:
        st.error(f"未创建调参：{error_text(exc)}")
        return
    ui.flash(
        "success",
        f"已创建调参 {sweep.name}：分层 {sweep.rungs}，调参控制器会依次开始试验",
        links.to_sweep(project.id, sweep.id, f"查看调参 {sweep.name}"),
    )
    st.session_state[f"sweep_form_{project.id}"] = st.session_state.get(f"sweep_form_{project.id}", 0) + 1
    st.rerun()


# ---- one sweep


def existing_sweep(project_id: str, sweep_id: str) -> Sweep:
    try:
        return get_client().get_sweep(project_id, sweep_id)
    except ApiError as exc:
        if exc.status_code != 404:
            return require(Client.get_sweep, project_id, sweep_id)
        st.error(error_text(exc))
        links.page_link(links.to_sweeps(project_id, "返回项目的调参列表"))
        st.stop()
    except FAILURES:
        return require(Client.get_sweep, project_id, sweep_id)


def header(project: Project, sweep: Sweep) -> None:
    st.title(f"调参 {sweep.name}")
    project_link, all_sweeps, prefect = st.columns([2, 2, 2], vertical_alignment="center")
    with project_link:
        links.page_link(links.to_project(project.id, f"项目：{project.name}"))
    with all_sweeps:
        links.page_link(links.to_sweeps(project.id, "项目的全部调参"))
    if sweep.flow_run_id:
        prefect.link_button(
            "在 Prefect 中查看控制器", links.prefect_flow_run_url(sweep.flow_run_id), icon=":material/open_in_new:"
        )
    pruning = (
        "" if sweep.pruner == Pruner.NONE else f"，淘汰比例 {sweep.reduction_factor}，第一层 {sweep.min_epochs} 轮"
    )
    st.caption(
        f"ID {sweep.id} · 目标 {objective_text(sweep)} · 采样器 {sweep.sampler.value} · 剪枝器 {sweep.pruner.value}"
        f"{pruning} · 同时 {sweep.parallelism} 个试验 · 随机种子 {ui.EMPTY if sweep.seed is None else sweep.seed}"
        f" · 创建者 {sweep.created_by or ui.EMPTY} · 创建时间 {ui.fmt_time(sweep.created_at)}"
    )


def stop_control(sweep: Sweep) -> None:
    if sweep.status != SweepStatus.RUNNING:
        return
    if st.session_state.get(STOP_KEY) != sweep.id:
        if st.button("停止调参", key="stop_sweep", icon=":material/stop_circle:"):
            st.session_state[STOP_KEY] = sweep.id
            st.rerun()
        return
    st.warning(f"确认停止调参 {sweep.name}？不再开始新试验；进行中的试验会被取消，各自保留最新检查点。")
    if ui.confirmed(STOP_KEY, "确认停止", "暂不停止", "stop_sweep"):
        st.session_state.pop(STOP_KEY)
        if call(Client.cancel_sweep, sweep.project_id, sweep.id):
            ui.flash("success", "调参已停止：进行中的试验已取消并保留检查点。")
            st.rerun()


def live_section(project_id: str, sweep_id: str, active: bool) -> None:
    """Everything that changes while the sweep runs; it reruns itself every REFRESH_SECONDS while it does."""
    st.fragment(_live, run_every=REFRESH_SECONDS if active else None)(project_id, sweep_id, active)


def _live(project_id: str, sweep_id: str, active: bool) -> None:
    sweep = call(Client.get_sweep, project_id, sweep_id)
    if sweep is None:
        return
    if active and sweep.status.is_terminal:
        st.rerun()
    status_panel(sweep)
    steps_panel(sweep)
    rungs_line(sweep)
    best_section(sweep)
    st.subheader("试验")
    trials_table(sweep)
    charts_section(sweep)


def status_panel(sweep: Sweep) -> None:
    badge, progress = st.columns([1, 7], vertical_alignment="center")
    with badge:
        status_badge(sweep.status)
    counts = {state: sum(t.state == state for t in sweep.trials) for state in TrialState}
    states = "".join(f" · {state.value} {count}" for state, count in counts.items() if count)
    progress.progress(
        min(sweep.trial_count / sweep.max_trials, 1.0),
        text=f"已开始 {sweep.trial_count} / {sweep.max_trials} 个试验{states}",
    )
    if sweep.message:
        (st.error if sweep.status == SweepStatus.FAILED else st.caption)(f"说明：{sweep.message}")


def steps_panel(sweep: Sweep) -> None:
    best, trained, saved = st.columns(3)
    best.metric(
        "最佳目标",
        ui.fmt_metric(sweep.best_objective),
        help=f"{objective_text(sweep)}：只比较训练到底的试验",
    )
    planned = sweep.steps_if_complete
    trained.metric(
        "训练步数",
        f"{sweep.steps_trained:,} / {planned:,}" if planned else f"{sweep.steps_trained:,}",
        help="所有试验实际训练的步数 / 同样数量的试验都训练到底需要的步数",
    )
    saved.metric(
        "续训节省",
        f"{sweep.steps_saved:,} 步",
        help="试验晋升到下一层时从上一层的检查点续训，不必从第 0 步重新训练的步数",
    )
    if planned:
        fewer = planned - sweep.steps_trained
        st.caption(
            f"{sweep.trial_count} 个试验都训练到底需要 {planned:,} 步，实际训练 {sweep.steps_trained:,} 步，"
            f"少训练 {fewer:,} 步（{fewer / planned:.0%}）：其中 {sweep.steps_saved:,} 步来自晋升时从检查点续训，"
            "其余来自被提前停止的试验和尚未训练完的试验。"
        )


def rungs_line(sweep: Sweep) -> None:
    if len(sweep.rungs) < 2:
        end = f"第 {sweep.rungs[0]} 步" if sweep.rungs else "结束"
        st.caption(f"不分层：每个试验一次训练到{end}。")
        return
    reached = [sum(t.rung >= rung for t in sweep.trials) for rung in range(len(sweep.rungs))]
    parts = [
        f"第 {rung} 层到第 {step} 步（{count} 个试验）" for rung, (step, count) in enumerate(zip(sweep.rungs, reached))
    ]
    st.markdown("**分层**：" + " → ".join(parts))
    st.caption("试验在每层结束时保存检查点，由剪枝器决定提前停止（保留检查点）或晋升到下一层，从检查点续训。")


def ranked_runs(sweep: Sweep) -> list[str]:
    """The latest runs of the trials with an objective, best first (the API's order)."""
    return [t.run_id for t in sweep.trials if t.objective is not None and t.run_id]


def best_section(sweep: Sweep) -> None:
    st.subheader("最佳试验")
    best = sweep.best
    if best is None:
        st.caption("还没有训练到底的试验。")
        return
    st.markdown(
        f"**试验 {best.number}** · {sweep.objective.metric} = {best.objective:.4g} · "
        + sweep_charts.params_text(best.params)
    )
    run_link, compare, _ = st.columns([2, 2, 2])
    with run_link:
        links.page_link(links.to_run(sweep.project_id, best.run_id, "打开最佳试验的运行"))
    compared = ranked_runs(sweep)[:COMPARED]
    if len(compared) > 1:
        with compare:
            label = f"与其后 {len(compared) - 1} 个最好的试验对比"
            links.page_link(links.to_compare(sweep.project_id, compared, label))
    tag_best(sweep)


def tag_best(sweep: Sweep) -> None:
    best = sweep.best
    if best.checkpoint_id is None:
        st.caption("最佳试验还没有检查点，无法打标签。")
        return
    run = call(Client.get_run, sweep.project_id, best.run_id)
    artifact = next((a for a in run.artifacts if a.id == best.checkpoint_id), None) if run else None
    if artifact is None:
        return
    st.caption(
        f"最佳试验的检查点 {run_actions.checkpoint_label(artifact)} · 当前标签 {run_actions.latest_tag(artifact)}"
    )
    pending = st.session_state.get(run_actions.RELEASE_KEY)
    if pending and pending["run_id"] == run.id and pending["artifact_id"] == artifact.id:
        run_actions._confirm_release(run, artifact, pending)
        return
    candidate, release, _ = st.columns([1, 1, 4])
    if candidate.button("标为候选", key="best_candidate", icon=":material/label:"):
        run_actions._apply_tag(run, artifact, TagValue.CANDIDATE.value, f"调参 {sweep.name} 的最佳试验")
    if release.button("标为发布…", key="best_release", icon=":material/rocket_launch:"):
        ask_release(run, artifact, f"调参 {sweep.name} 的最佳试验")


def ask_release(run: Run, artifact: Artifact, notes: str) -> None:
    """Hold a 发布 until the user confirms it, naming the release it replaces (as the run page does)."""
    releases = call(Client.list_releases, run.project_id)
    if releases is None:
        return
    current = releases.current
    st.session_state[run_actions.RELEASE_KEY] = {
        "run_id": run.id,
        "artifact_id": artifact.id,
        "notes": notes,
        "replaces": current.artifact_id if current else None,
        "replaces_label": run_actions._release_label(current) if current else None,
    }
    st.rerun()


def trial_row(sweep: Sweep, trial: SweepTrial) -> dict:
    return {
        "试验": trial.number,
        "状态": trial.state.value,
        **{name: sweep_charts.fmt_param(trial.params.get(name)) for name in sweep.space},
        sweep.objective.metric: trial.objective,
        "层": trial.rung,
        "步数": trial.step,
        "运行": links.named_run_url(sweep.project_id, trial.run_id, trial.run_id) if trial.run_id else None,
        "说明": trial.pruned_reason or trial.message or ui.EMPTY,
    }


def trials_table(sweep: Sweep) -> None:
    if not sweep.trials:
        st.caption("还没有试验：调参控制器开始第一个试验后会在这里显示。")
        return
    metric = sweep.objective.metric
    st.dataframe(
        pd.DataFrame([trial_row(sweep, trial) for trial in sweep.trials]),
        hide_index=True,
        placeholder=ui.EMPTY,
        column_config={
            "试验": st.column_config.NumberColumn("试验", format="%d", width=50),
            "状态": st.column_config.TextColumn("状态", width=60),
            **{name: st.column_config.TextColumn(name, width=90) for name in sweep.space},
            metric: st.column_config.NumberColumn(
                metric, format="%.4g", width=80, help=f"目标：{objective_text(sweep)}"
            ),
            "层": st.column_config.NumberColumn("层", format="%d", width=40, help="试验到达的层（从 0 起）"),
            "步数": st.column_config.NumberColumn("步数", format="%d", width=60),
            "说明": st.column_config.TextColumn("说明", width="large", help="剪枝原因，或失败、取消的原因"),
            "运行": st.column_config.LinkColumn(
                "运行", display_text=links.NAME_IN_URL, width=130, help="试验最新的一段运行"
            ),
        },
        key="trials_table",
    )
    st.caption("按目标从好到差排列：训练到底的试验在前，其余按到达的层从深到浅；没有目标值的在最后。")


def charts_section(sweep: Sweep) -> None:
    progress, parallel = st.columns(2)
    for column, spec, key in [
        (progress, sweep_charts.best_so_far_spec(sweep), "sweep_best_chart"),
        (parallel, sweep_charts.parallel_spec(sweep), "sweep_parallel_chart"),
    ]:
        if spec is None:
            column.caption("有试验结束后，这里显示图表。")
        else:
            column.vega_lite_chart(spec=spec, width="stretch", key=key)
    st.caption(
        "左：按结束顺序的每个试验的目标值（三角为被剪枝的试验，取剪枝时的值）与截至当时的最佳值。"
        "右：每条线是一个试验，颜色表示目标值（越深越好），虚线为被剪枝的试验；对数刻度的超参数按对数等距排列。"
    )


def sweep_page(project: Project, sweep_id: str) -> None:
    sweep = existing_sweep(project.id, sweep_id)
    header(project, sweep)
    ui.show_flash()
    stop_control(sweep)
    live_section(project.id, sweep.id, active=sweep.status == SweepStatus.RUNNING)


project_id = pickers.project_id()
project = pickers.existing_project(project_id)
if sweep_id := st.query_params.get("sweep_id"):
    st.query_params["sweep_id"] = sweep_id
    sweep_page(project, sweep_id)
else:
    sweeps_page(project)
