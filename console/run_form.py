"""The 发起运行 form of a project: trainer, model, dataset, hyperparameters, priority and the GPUs to wait for.

With a registered GPU inventory it offers only the GPU types that exist, and at most as many devices as one host
has of the chosen type (a run's devices are on one host); without one it keeps free inputs. The inputs are not in an
st.form, so the configuration the run would train with (from the API's preview, nothing stored) follows every
change; numbers are checked here with Chinese messages rather than by the browser."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import FAILURES, call, error_text, get_client
from ltm.console.gpu_inventory import Capacity, capacities
from ltm.models import EffectiveHyperparameter, Project, ProjectStatus, RunPreview

GPU_TYPES = ["A100", "H100", "H200", "H800", "A800", "L40S", "V100", "A10"]
MAX_GPUS = 4096
UNSET = "未设置"  # null: the trainer decides (its description says how)
SOURCE_HELP = "运行：本次填写的值；项目默认：项目的默认超参数；训练器默认：训练器声明的默认值"


Problems = dict[str, str]  # the create-body field a local check refused → why, in Chinese


def whole_number(where, label: str, field: str, value: int, bounds: tuple[int, int], problems: Problems, **kw) -> int:
    """A number input without browser-side bounds (those answer in English and block silently); out of range is
    reported in Chinese in `problems[field]`."""
    number = int(where.number_input(label, value=value, step=1, **kw))
    low, high = bounds
    if not low <= number <= high:
        problems[field] = f"{label}必须在 {low} 到 {high} 之间，当前为 {number}"
    return number


def gpu_request(version: str, problems: Problems) -> dict:
    """The `resources` the user asks for; the count's limit follows the chosen type."""
    overview = call(Client.list_resources)
    found = capacities(overview.hosts) if overview else {}
    st.markdown("**GPU 资源**")
    kind, count = st.columns(2)
    if not found:
        gpu_type = kind.selectbox("GPU 类型", GPU_TYPES, key=f"run_gpu_type_{version}", persist_state="page")
        gpu_count = whole_number(
            count,
            "GPU 数量",
            "resources",
            1,
            (0, MAX_GPUS),
            problems,
            key=f"run_gpu_count_{version}",
            persist_state="page",
        )
        st.caption("还没有登记 GPU 主机：运行不排队等待 GPU，资源请求只记录在运行上。")
        return {"gpu_type": gpu_type, "gpu_count": gpu_count}
    gpu_type = kind.selectbox(
        "GPU 类型",
        list(found),
        format_func=lambda t: f"{t}（空闲 {found[t].free} / 共 {found[t].total}）",
        key=f"run_gpu_type_{version}",
        persist_state="page",
    )
    chosen: Capacity = found[gpu_type]
    gpu_count = int(
        count.number_input(
            "GPU 数量",
            value=min(1, chosen.largest_host),
            step=1,
            help=f"0 到 {chosen.largest_host}：一个运行的 GPU 都在同一台主机上，最多为单台主机上该型号的数量",
            key=f"run_gpu_count_{version}_{gpu_type}",
            persist_state="page",
        )
    )
    if not 0 <= gpu_count <= chosen.largest_host:
        problems["resources"] = (
            f"GPU 数量必须在 0 到 {chosen.largest_host} 之间（单台主机上最多有 {chosen.largest_host} 块 {gpu_type}），"
            f"当前为 {gpu_count}"
        )
    st.caption(
        f"{gpu_type}：在线空闲 {chosen.free} 块，共 {chosen.total} 块，单台主机最多 {chosen.largest_host} 块；"
        "设备不够时运行排队等待，可在“资源”页查看队列。"
    )
    return {"gpu_type": gpu_type, "gpu_count": gpu_count}


TRAINER_KIND, SCRIPT_KIND = "内置训练器", "自己的脚本"


def script_fields(version: str, problems: Problems) -> dict:
    """A script run: its command line, code folder and process count (see docs/scripts.md)."""
    entrypoint = st.text_input(
        "启动命令 *",
        placeholder="python train.py --epochs 3",
        help="以 python 开头，由 worker 自己的解释器运行；脚本通过 ltm.core 上报指标、保存检查点（见 docs/scripts.md）",
        key=f"run_entrypoint_{version}",
        persist_state="page",
    )
    folder, processes = st.columns([3, 1])
    source = folder.text_input(
        "代码目录（可选）",
        placeholder="examples/hf_tiny_gpt2",
        help="worker 上 LTM_SOURCE_DIR 下的相对目录；留空为 LTM_SOURCE_DIR 本身",
        key=f"run_source_{version}",
        persist_state="page",
    )
    count = whole_number(
        processes,
        "进程数（0 为自动）",
        "processes",
        0,
        (0, 64),
        problems,
        help="0 到 64；大于 1 时用 torchrun 启动；自动为租到的 GPU 数，没有 GPU 时为 1",
        key=f"run_processes_{version}",
        persist_state="page",
    )
    return {"entrypoint": entrypoint.strip(), "source": source.strip() or None, "processes": count or None}


def run_values(box: dict, defaults: dict) -> dict:
    """What the run itself sends: values that differ from the project defaults, and null for a default the user
    deleted from the box (the API then uses the trainer's default instead)."""
    changed = {key: value for key, value in box.items() if key not in defaults or defaults[key] != value}
    return {**changed, **{key: None for key in defaults if key not in box}}


def shown_value(value) -> str:
    return UNSET if value is None else ui.fmt_value(value)


def effective_table(preview: RunPreview) -> None:
    """The configuration the run would train with, each hyperparameter with the place its value comes from."""
    rows: list[EffectiveHyperparameter] = preview.effective_hyperparameters
    gpus = preview.resources.get("gpu_count") or 0
    facts = [
        f"训练器 {preview.trainer}",
        f"GPU {gpus} × {preview.resources.get('gpu_type') or '—'}" if gpus else "不用 GPU",
    ]
    if preview.total_steps is not None:
        facts.append(f"共 {preview.total_steps} 步")
    st.markdown("**将要运行的配置**")
    st.caption(" · ".join(facts) + f" · 优先级 {preview.priority}")
    if not rows:
        st.caption("没有超参数：脚本自己决定全部设置。")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "超参数": [row.name for row in rows],
                "取值": [shown_value(row.value) for row in rows],
                "来源": [row.source for row in rows],
                "训练器默认值": [shown_value(row.default) for row in rows],
                "说明": [row.description or ui.EMPTY for row in rows],
            }
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "超参数": st.column_config.TextColumn(width=130),
            "取值": st.column_config.TextColumn(width=80),
            "来源": st.column_config.TextColumn(width=90, help=SOURCE_HELP),
            "训练器默认值": st.column_config.TextColumn("默认值", width=80),
            "说明": st.column_config.TextColumn(width="large"),
        },
    )


def preview(project: Project, fields: dict) -> str | None:
    """Show what `fields` would run; the API's refusal, in Chinese, when it would not."""
    try:
        answer = get_client().preview_run(project.id, **{k: v for k, v in fields.items() if v not in (None, "")})
    except FAILURES as exc:
        return error_text(exc)
    effective_table(answer)
    return None


def _generation(project: Project) -> str:
    """Widget keys of the form; a new generation after a run is created gives the user an empty form."""
    return f"{project.version}_{st.session_state.get(f'run_form_{project.id}', 0)}"


def start_run_form(project: Project) -> None:
    if project.status == ProjectStatus.ARCHIVED:
        st.info("项目已归档，恢复后才能发起运行。")
        return
    version = _generation(project)
    problems: Problems = {}
    trainers = {t.name: t for t in call(Client.list_trainers) or []}
    default_trainer = project.default_trainer or "simulated"
    resources = gpu_request(version, problems)
    kind = st.radio(
        "训练方式", [TRAINER_KIND, SCRIPT_KIND], horizontal=True, key=f"run_kind_{version}", persist_state="page"
    )
    script: dict = {}
    trainer = None
    if kind == SCRIPT_KIND:
        script = script_fields(version, problems)
    else:
        names = list(trainers) or [default_trainer]
        trainer = st.selectbox(
            "训练器",
            names,
            index=names.index(default_trainer) if default_trainer in names else 0,
            format_func=lambda n: f"{n} — {trainers[n].description}" if n in trainers else n,
            help="训练器只在这里选择；超参数里不要写 trainer",
            key=f"run_trainer_{version}",
            persist_state="page",
        )
    left, right = st.columns(2)
    name = left.text_input("运行名称（可选）", key=f"run_name_{version}", persist_state="page")
    model = right.text_input("模型 *", value=project.base_model or "", key=f"run_model_{version}", persist_state="page")
    data, rank = st.columns([3, 1])
    dataset = data.text_input("数据集 *", key=f"run_dataset_{version}", persist_state="page")
    priority = whole_number(
        rank,
        "优先级",
        "priority",
        project.default_priority,
        (-100, 100),
        problems,
        help=ui.PRIORITY_HELP,
        key=f"run_priority_{version}",
        persist_state="page",
    )
    box, shown = st.columns([1, 2])
    text = box.text_area(
        "超参数（JSON 对象，已填入项目默认值）",
        value=ui.pretty_json(project.default_hyperparameters),
        height=260,
        help="改动或新增的键覆盖项目默认值；删去的键不再使用项目默认值，改用训练器默认值",
        key=f"run_hp_{version}",
        persist_state="page",
    )
    try:
        hyperparameters = run_values(ui.parse_json_object(text, "超参数"), project.default_hyperparameters)
    except ui.InputError as exc:
        problems["hyperparameters"] = str(exc)
        hyperparameters = None
    fields = {
        "name": ui.optional_text(name),
        "model": model.strip() or None,
        "dataset": dataset.strip() or None,
        "hyperparameters": hyperparameters,
        "resources": resources,
        "trainer": trainer,
        "priority": priority,
        **script,
    }
    with shown:
        if script and not script["entrypoint"]:
            st.caption("填写启动命令后，这里显示将要运行的配置。")
        elif "hyperparameters" not in problems:
            refused = preview(project, {key: value for key, value in fields.items() if key not in problems})
            if refused:
                problems["preview"] = refused
        for problem in problems.values():
            st.error(problem)
    if st.button("发起运行", type="primary", key="start_run_submit"):
        launch(project, fields, problems)


def launch(project: Project, fields: dict, problems: Problems) -> None:
    try:
        if problems:
            raise ui.InputError("未发起运行：请先修正上面的问题")
        if "entrypoint" in fields:
            ui.required_text(fields["entrypoint"], "启动命令")
        ui.required_text(fields["model"] or "", "模型")
        ui.required_text(fields["dataset"] or "", "数据集")
    except ui.InputError as exc:
        st.error(str(exc))
        return
    run = call(Client.create_run, project.id, **fields)
    if run:
        waiting = f"，等待 GPU：同型号队列第 {run.queue_position} 位" if run.queue_position else ""
        ui.flash(
            "success",
            f"已创建运行 {run.name}（{run.status.value}）{waiting}",
            links.to_run(project.id, run.id, f"查看运行 {run.name}"),
        )
        st.session_state[f"run_form_{project.id}"] = st.session_state.get(f"run_form_{project.id}", 0) + 1
        st.rerun()
