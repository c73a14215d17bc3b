"""The 发起运行 form of a project: trainer, model, dataset, hyperparameters, priority and the GPUs to wait for.

With a registered GPU inventory it offers only the GPU types that exist, and at most as many devices as one host
has of the chosen type (a run's devices are on one host); without one it keeps free inputs."""

import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import call
from ltm.console.gpu_inventory import Capacity, capacities
from ltm.models import Project, ProjectStatus

GPU_TYPES = ["A100", "H100", "H200", "H800", "A800", "L40S", "V100", "A10"]


def gpu_request(version: int) -> dict:
    """The `resources` the user asks for; outside the form so the count's limit follows the chosen type."""
    overview = call(Client.list_resources)
    found = capacities(overview.hosts) if overview else {}
    st.markdown("**GPU 资源**")
    kind, count = st.columns(2)
    if not found:
        gpu_type = kind.selectbox("GPU 类型", GPU_TYPES, key=f"run_gpu_type_{version}")
        gpu_count = count.number_input(
            "GPU 数量", min_value=0, max_value=4096, value=1, step=1, key=f"run_gpu_count_{version}"
        )
        st.caption("还没有登记 GPU 主机：运行不排队等待 GPU，资源请求只记录在运行上。")
        return {"gpu_type": gpu_type, "gpu_count": int(gpu_count)}
    gpu_type = kind.selectbox(
        "GPU 类型",
        list(found),
        format_func=lambda t: f"{t}（空闲 {found[t].free} / 共 {found[t].total}）",
        key=f"run_gpu_type_{version}",
    )
    chosen: Capacity = found[gpu_type]
    gpu_count = count.number_input(
        "GPU 数量",
        min_value=0,
        max_value=chosen.largest_host,
        value=min(1, chosen.largest_host),
        step=1,
        help="一个运行的 GPU 都在同一台主机上，最多为单台主机上该型号的数量",
        key=f"run_gpu_count_{version}_{gpu_type}",
    )
    st.caption(
        f"{gpu_type}：在线空闲 {chosen.free} 块，共 {chosen.total} 块，单台主机最多 {chosen.largest_host} 块；"
        "设备不够时运行排队等待，可在“资源”页查看队列。"
    )
    return {"gpu_type": gpu_type, "gpu_count": int(gpu_count)}


TRAINER_KIND, SCRIPT_KIND = "内置训练器", "自己的脚本"


def script_fields(version: int) -> dict:
    """A script run: its command line, code folder and process count (see docs/scripts.md)."""
    entrypoint = st.text_input(
        "启动命令 *",
        placeholder="python train.py --epochs 3",
        help="以 python 开头，由 worker 自己的解释器运行；脚本通过 ltm.core 上报指标、保存检查点（见 docs/scripts.md）",
        key=f"run_entrypoint_{version}",
    )
    folder, processes = st.columns([3, 1])
    source = folder.text_input(
        "代码目录（可选）",
        placeholder="examples/hf_tiny_gpt2",
        help="worker 上 LTM_SOURCE_DIR 下的相对目录；留空为 LTM_SOURCE_DIR 本身",
        key=f"run_source_{version}",
    )
    count = processes.number_input(
        "进程数（0 为自动）",
        min_value=0,
        max_value=64,
        value=0,
        step=1,
        help="大于 1 时用 torchrun 启动；自动为租到的 GPU 数，没有 GPU 时为 1",
        key=f"run_processes_{version}",
    )
    return {
        "entrypoint": entrypoint.strip() or "",
        "source": source.strip() or None,
        "processes": int(count) or None,
    }


def start_run_form(project: Project) -> None:
    if project.status == ProjectStatus.ARCHIVED:
        st.info("项目已归档，恢复后才能发起运行。")
        return
    version = project.version
    trainers = {t.name: t for t in call(Client.list_trainers) or []}
    default_trainer = project.default_trainer or "simulated"
    resources = gpu_request(version)
    kind = st.radio("训练方式", [TRAINER_KIND, SCRIPT_KIND], horizontal=True, key=f"run_kind_{version}")
    with st.form(f"start_run_{version}"):
        script = {}
        trainer = None
        if kind == SCRIPT_KIND:
            script = script_fields(version)
        else:
            names = list(trainers) or [default_trainer]
            trainer = st.selectbox(
                "训练器",
                names,
                index=names.index(default_trainer) if default_trainer in names else 0,
                format_func=lambda n: f"{n} — {trainers[n].description}" if n in trainers else n,
                key=f"run_trainer_{version}",
            )
            if trainer in trainers:
                st.caption(
                    "可用超参数："
                    + "；".join(
                        f"{h.name}（默认 {h.default}）：{h.description}" for h in trainers[trainer].hyperparameters
                    )
                )
        left, right = st.columns(2)
        name = left.text_input("运行名称（可选）", key=f"run_name_{version}")
        model = right.text_input("模型 *", value=project.base_model or "", key=f"run_model_{version}")
        data, rank = st.columns([3, 1])
        dataset = data.text_input("数据集 *", key=f"run_dataset_{version}")
        priority = rank.number_input(
            "优先级",
            min_value=-100,
            max_value=100,
            value=project.default_priority,
            step=1,
            help=ui.PRIORITY_HELP,
            key=f"run_priority_{version}",
        )
        hyperparameters = st.text_area(
            "超参数（JSON 对象，已填入项目默认值）",
            value=ui.pretty_json(project.default_hyperparameters),
            height=160,
            key=f"run_hp_{version}",
        )
        if not st.form_submit_button("发起运行", type="primary", key="start_run_submit"):
            return
    try:
        fields = {
            "entrypoint": ui.required_text(script["entrypoint"], "启动命令") if script else None,
            "model": ui.required_text(model, "模型"),
            "dataset": ui.required_text(dataset, "数据集"),
            "name": ui.optional_text(name),
            "hyperparameters": ui.parse_json_object(hyperparameters, "超参数"),
            "resources": resources,
            "trainer": trainer,
            "priority": int(priority),
            "source": script.get("source"),
            "processes": script.get("processes"),
        }
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
        st.rerun()
