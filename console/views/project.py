import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import audit, diffing, links, pickers, releases, run_form, runs_list, ui, webhooks
from ltm.console.client import call
from ltm.models import Project, ProjectStatus, Visibility
from ltm.vocabulary import FIELD_LABELS

TABS = ["概览", "运行", "发起运行", "发布", "版本历史", "编辑", "通知", "审计记录"]


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
    back, sweeps, _ = st.columns([1, 1, 4])
    with back:
        links.page_link(links.to_projects())
    with sweeps:
        links.page_link(links.to_sweeps(project.id, "调参（超参数搜索）"))


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


def field_label(key: str) -> str:
    head, dot, rest = key.partition(".")
    return FIELD_LABELS.get(head, head) + dot + rest


def version_history(project: Project) -> None:
    versions = {v.version: v for v in project.versions}
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "版本": v.version,
                    "时间": ui.fmt_time(v.created_at),
                    "变更": "、".join(FIELD_LABELS.get(field, field) for field in v.changes) or ui.EMPTY,
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
    old = older.selectbox(
        "从版本", numbers, index=len(numbers) - 2, key=f"diff_old_{project.version}", persist_state="page"
    )
    new = newer.selectbox(
        "到版本", numbers, index=len(numbers) - 1, key=f"diff_new_{project.version}", persist_state="page"
    )
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
        named, owned = st.columns(2)
        name = named.text_input("项目名称", value=project.name, max_chars=200, key=f"edit_name_{version}")
        owner = owned.text_input(
            "负责人",
            value=project.owner,
            max_chars=200,
            help="开启认证时，只有负责人本人或管理员可以把项目交给他人",
            key=f"edit_owner_{version}",
        )
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
            "name": ui.required_text(name, "项目名称"),
            "owner": ui.required_text(owner, "负责人"),
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


project_id = pickers.project_id()
project = pickers.existing_project(project_id)
header(project)
ui.show_flash()
notes = runs_list.address_notes(project.id)
if (asked := st.query_params.get("tab")) and asked not in TABS:
    notes.insert(0, f"地址中的 tab={asked} 无效，已打开“{TABS[0]}”")
for note in notes:
    st.info(note, icon=":material/link_off:")
# Only the open tab is drawn. Its name is in the address, so switching tabs reruns the page anyway, and drawing the
# hidden tabs (the launch form, three more grids, the edit and webhook forms) made every run of the page — the runs
# list's first drawing included — wait on their API calls and on the browser's drawing of them.
sections = [
    overview,
    runs_list.runs_tab,
    run_form.start_run_form,
    releases.releases_section,
    version_history,
    edit_form,
    webhooks.webhooks_section,
    audit.audit_section,
]
for tab, section in zip(st.tabs(TABS, default=TABS[0], key="tab", bind="query-params"), sections, strict=True):
    if tab.open is not False:
        with tab:
            section(project)
