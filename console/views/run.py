import streamlit as st

from ltm import Client
from ltm.console import links, pickers, run_actions, run_live, run_logs, run_survival, ui
from ltm.console.client import call, get_client
from ltm.console.fidelity import show_fidelity
from ltm.models import Project, Run

LINEAGE_CHILDREN = 50
TABS = ["日志", "检查点标签", "从检查点恢复", "运行配置"]


def header(run: Run, project: Project) -> None:
    st.title(f"运行 {run.name}")
    links.page_link(links.to_project(project.id, f"项目：{project.name}"))
    st.caption(
        f"ID {run.id} · 训练器 {run.trainer} · 模型 {run.model} · 数据集 {run.dataset} · 项目版本 {run.project_version}"
        f" · 优先级 {run.priority} · 创建者 {run.created_by or ui.EMPTY}"
        + (f" · 脚本 `{run.entrypoint}` · 代码版本 {run.code_version or ui.EMPTY}" if run.entrypoint else "")
    )
    sweep_line(run)
    targets = [links.to_projects()]
    if run.parent_run_id:
        targets.append(links.to_compare(run.project_id, [run.parent_run_id, run.id], "与父运行对比"))
    columns = st.columns(len(targets) + 1)
    for column, target in zip(columns, targets):
        with column:
            links.page_link(target)
    if run.flow_run_id:
        columns[-1].link_button(
            "在 Prefect 中查看", links.prefect_flow_run_url(run.flow_run_id), icon=":material/open_in_new:"
        )


def sweep_line(run: Run) -> None:
    """Which trial of which sweep this run trains, with the way to the sweep."""
    if not run.sweep_id:
        return
    sweep = call(Client.get_sweep, run.project_id, run.sweep_id)
    stop = f"，训练到第 {run.stop_at_step} 步后由调参决定剪枝或晋升" if run.stop_at_step else ""
    label = f"调参 {sweep.name if sweep else run.sweep_id} 的试验 {run.trial_number}（第 {run.rung} 层{stop}）"
    links.page_link(links.to_sweep(run.project_id, run.sweep_id, label))


def lineage(run: Run) -> None:
    """The parent this run resumed from and the runs resumed from it: two small lookups, whatever the project's size."""
    children = call(Client.search_runs, run.project_id, parent=run.id, limit=LINEAGE_CHILDREN)
    if not run.resumed_from and not (children and children.items):
        return
    st.subheader("谱系")
    if run.resumed_from:
        parent = call(Client.get_run, run.project_id, run.parent_run_id) if run.parent_run_id else None
        st.markdown(f"从检查点 `{run.resumed_from}`（第 {run.start_step} 步）恢复，父运行：")
        if parent:
            links.page_link(links.to_run(run.project_id, parent.id, f"{parent.name}（{parent.status.value}）"))
        else:
            st.caption(run.parent_run_id or ui.EMPTY)
    if children and children.items:
        more = f"，显示最早的 {len(children.items)} 个" if children.total > len(children.items) else ""
        st.markdown(f"从本运行恢复的子运行（{children.total} 个{more}）：")
        for child in children.items:
            links.page_link(
                links.to_run(
                    run.project_id, child.id, f"{child.name}（{child.status.value}，检查点 {child.resumed_from}）"
                )
            )


def configuration(run: Run) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("**超参数**")
        st.json(run.hyperparameters)
    with right:
        st.markdown("**资源**")
        st.json(run.resources)
        st.markdown(f"**起始步数**：{run.start_step}")
    if run.entrypoint:
        st.markdown("**脚本**")
        st.code(run.entrypoint, language="bash")
        st.caption(
            f"代码目录 {run.source or 'LTM_SOURCE_DIR'} · 进程数 {run.processes or '自动'} · "
            f"代码版本 {run.code_version or '（尚未开始）'}"
        )


project_id = pickers.project_id()
run_id = pickers.run_id(project_id)
project = pickers.existing_project(project_id)
run = pickers.existing_run(project_id, run_id)
header(run, project)
ui.show_flash()
show_fidelity(get_client(), run)
lineage(run)
run_survival.show_survival(run, project)
run_actions.cancel_control(run)
run_live.live_section(project_id, run_id, active=not run.status.is_terminal)
st.divider()
# The open tab lives in the address: a rerun (a 发布 waiting for its confirmation) keeps it, and a link can open it.
tab_logs, tab_tag, tab_resume, tab_config = st.tabs(TABS, default=TABS[0], key="run_tab", bind="query-params")
with tab_logs:
    run_logs.logs_section(project_id, run_id)
with tab_tag:
    run_actions.tag_section(run)
with tab_resume:
    run_actions.resume_section(run)
with tab_config:
    configuration(run)
