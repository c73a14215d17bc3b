import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import diffing, links, pickers, run_form, ui
from ltm.console.client import call, require
from ltm.models import Project, ProjectStatus, RunOverview, Visibility

SHOWN_METRICS = 6


def header(project: Project) -> None:
    st.title(project.name)
    badge, facts, toggle = st.columns([1, 6, 2], vertical_alignment="center")
    with badge:
        ui.status_badge(project.status)
    facts.caption(f"ID {project.id} · 负责人 {project.owner} · 版本 {project.version} · 运行 {project.run_count} 个")
    archived = project.status == ProjectStatus.ARCHIVED
    if toggle.button("恢复项目" if archived else "归档项目", key="toggle_archive"):
        if call(Client.update_project, project.id, status="未归档" if archived else "已归档"):
            ui.flash("success", "项目已恢复" if archived else "项目已归档")
            st.rerun()
    links.page_link(links.to_projects())


def overview(project: Project) -> None:
    info, config = st.columns(2)
    with info:
        st.subheader("项目信息")
        for label, value in [
            ("描述", project.description),
            ("目标", project.objective),
            ("任务类型", project.task_type),
            ("基线模型", project.base_model),
            ("负责人", project.owner),
            ("可见范围", project.visibility.value),
            ("标签", "、".join(project.tags)),
            ("创建时间", ui.fmt_time(project.created_at)),
            ("更新时间", ui.fmt_time(project.updated_at)),
        ]:
            st.markdown(f"**{label}**：{value or ui.EMPTY}")
    with config:
        st.subheader("默认配置")
        if project.default_hyperparameters:
            st.json(project.default_hyperparameters)
        else:
            st.caption("没有默认超参数，运行只使用自己的超参数和训练器的默认值。")
        st.markdown(f"**默认训练器**：{project.default_trainer or 'simulated'}")
        st.markdown(f"**默认优先级**：{project.default_priority}（越大越先分配 GPU）")


def runs_table(project: Project, runs: list[RunOverview]) -> None:
    if not runs:
        st.info("还没有运行，在“发起运行”中启动第一个运行。")
        return
    metric_names = sorted({name for run in runs for name in run.metrics})[:SHOWN_METRICS]
    names = {run.id: run.name for run in runs}
    frame = pd.DataFrame(
        [
            {
                "名称": run.name,
                "状态": run.status.value,
                "进度": run.progress,
                **{name: run.metrics.get(name) for name in metric_names},
                "GPU 利用率": run.gpu_utilization,
                "优先级": run.priority,
                "GPU 排队": f"第 {run.queue_position} 位" if run.queue_position else ui.EMPTY,
                "开始时间": ui.fmt_time(run.started_at),
                "更新时间": ui.fmt_time(run.updated_at),
                "恢复自": names.get(run.parent_run_id, ui.EMPTY),
                "详情": links.run_url(project.id, run.id),
            }
            for run in runs
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "进度": st.column_config.ProgressColumn("进度", min_value=0.0, max_value=1.0, format="percent"),
            "GPU 利用率": st.column_config.ProgressColumn("GPU 利用率", min_value=0.0, max_value=1.0, format="percent"),
            **{name: st.column_config.NumberColumn(name, format="%.4g") for name in metric_names},
            "详情": st.column_config.LinkColumn("详情", display_text="打开"),
        },
    )
    picked = st.multiselect(
        "选择运行进行对比", list(names), format_func=names.get, key="compare_pick", placeholder="选择两个或更多运行"
    )
    if len(picked) >= 2:
        links.page_link(links.to_compare(project.id, picked, f"对比所选的 {len(picked)} 个运行"))


def field_label(key: str) -> str:
    head, dot, rest = key.partition(".")
    return ui.PROJECT_FIELDS.get(head, head) + dot + rest


def version_history(project: Project) -> None:
    versions = {v.version: v for v in project.versions}
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "版本": v.version,
                    "时间": ui.fmt_time(v.created_at),
                    "变更": "、".join(ui.PROJECT_FIELDS.get(field, field) for field in v.changes) or ui.EMPTY,
                }
                for v in reversed(project.versions)
            ]
        ),
        hide_index=True,
    )
    if len(versions) < 2:
        st.caption("只有一个版本，修改项目后可以在这里对比版本差异。")
        return
    numbers = sorted(versions)
    older, newer = st.columns(2)
    old = older.selectbox("从版本", numbers, index=len(numbers) - 2, key=f"diff_old_{project.version}")
    new = newer.selectbox("到版本", numbers, index=len(numbers) - 1, key=f"diff_new_{project.version}")
    rows = diffing.side_by_side(
        {
            f"版本 {old}": diffing.flatten(versions[old].snapshot),
            f"版本 {new}": diffing.flatten(versions[new].snapshot),
        }
    )
    if not rows:
        st.info("两个版本之间没有差异。")
        return
    for row in rows:
        row["字段"] = field_label(row["字段"])
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def edit_form(project: Project) -> None:
    version = project.version
    with st.form(f"edit_project_{version}"):
        description = st.text_area("描述", value=project.description or "", key=f"edit_description_{version}")
        objective = st.text_area("目标", value=project.objective or "", key=f"edit_objective_{version}")
        first, second, third = st.columns(3)
        task_type = first.text_input("任务类型", value=project.task_type or "", key=f"edit_task_type_{version}")
        base_model = second.text_input("基线模型", value=project.base_model or "", key=f"edit_base_model_{version}")
        tags = third.text_input("标签（用逗号分隔）", value=", ".join(project.tags), key=f"edit_tags_{version}")
        hyperparameters = st.text_area(
            "默认超参数（JSON 对象）",
            value=ui.pretty_json(project.default_hyperparameters),
            height=160,
            key=f"edit_hp_{version}",
        )
        trainers = [None, *(t.name for t in call(Client.list_trainers) or [])]
        if project.default_trainer not in trainers:
            trainers.append(project.default_trainer)
        default_trainer = st.selectbox(
            "默认训练器",
            trainers,
            index=trainers.index(project.default_trainer),
            format_func=lambda name: name or "不设置（使用 simulated）",
            key=f"edit_trainer_{version}",
        )
        default_priority = st.number_input(
            "默认优先级",
            min_value=-100,
            max_value=100,
            value=project.default_priority,
            step=1,
            help=ui.PRIORITY_HELP,
            key=f"edit_priority_{version}",
        )
        visibilities = [v.value for v in Visibility]
        visibility = st.selectbox(
            "可见范围",
            visibilities,
            index=visibilities.index(project.visibility.value),
            help="私有项目只有负责人、项目成员和管理员可以看到；只有负责人和管理员可以修改",
            key=f"edit_visibility_{version}",
        )
        if not st.form_submit_button("保存修改", type="primary", key="edit_project_submit"):
            return
    try:
        wanted = {
            "description": ui.optional_text(description),
            "objective": ui.optional_text(objective),
            "task_type": ui.optional_text(task_type),
            "base_model": ui.optional_text(base_model),
            "tags": ui.parse_tags(tags),
            "default_hyperparameters": ui.parse_json_object(hyperparameters, "默认超参数"),
            "default_trainer": default_trainer,
            "visibility": visibility,
            "default_priority": int(default_priority),
        }
    except ui.InputError as exc:
        st.error(str(exc))
        return
    changes = {key: value for key, value in wanted.items() if value != getattr(project, key)}
    if not changes:
        st.info("没有修改，未生成新版本。")
        return
    updated = call(Client.update_project, project.id, **changes)
    if updated:
        ui.flash("success", f"已保存，当前为版本 {updated.version}")
        st.rerun()


def audit_trail(project: Project) -> None:
    """Who changed the project, started, cancelled or resumed runs and tagged checkpoints."""
    events = call(Client.audit_trail, project.id, limit=200)
    if events is None:
        return
    if not events:
        st.caption("还没有审计记录。")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "时间": ui.fmt_time(e.occurred_at),
                    "操作者": e.actor,
                    "操作": e.action,
                    "运行": e.run_id or ui.EMPTY,
                    "对象": e.target or ui.EMPTY,
                    "详情": e.details or ui.EMPTY,
                }
                for e in events
            ]
        ),
        hide_index=True,
    )


project_id = pickers.project_id()
project = require(Client.get_project, project_id)
runs = require(Client.list_runs, project_id)
header(project)
ui.show_flash()
tab_overview, tab_runs, tab_start, tab_versions, tab_edit, tab_audit = st.tabs(
    ["概览", "运行", "发起运行", "版本历史", "编辑", "审计记录"]
)
with tab_overview:
    overview(project)
with tab_runs:
    runs_table(project, runs)
with tab_start:
    run_form.start_run_form(project)
with tab_versions:
    version_history(project)
with tab_edit:
    edit_form(project)
with tab_audit:
    audit_trail(project)
