import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import call, require
from ltm.models import ProjectListItem, ProjectStatus, Visibility

ALL = "全部"
EXAMPLE_HYPERPARAMETERS = '{\n  "learning_rate": 3e-5,\n  "batch_size": 16\n}'
VISIBILITIES = [v.value for v in Visibility]
VISIBILITY_HELP = "团队可见：所有人可查看；私有：只有负责人、项目成员和管理员可以看到"


def chosen_filters() -> dict:
    owner, status, tag, query = st.columns(4)
    values = {
        "owner": owner.text_input("负责人", key="filter_owner"),
        "status": status.selectbox("状态", [ALL, *(s.value for s in ProjectStatus)], key="filter_status"),
        "tag": tag.text_input("标签", key="filter_tag"),
        "q": query.text_input("名称搜索", key="filter_q"),
    }
    return {key: value.strip() for key, value in values.items() if value.strip() and value != ALL}


def project_table(projects: list[ProjectListItem]) -> None:
    frame = pd.DataFrame(
        [
            {
                "名称": p.name,
                "状态": p.status.value,
                "负责人": p.owner,
                "任务类型": p.task_type or ui.EMPTY,
                "标签": "、".join(p.tags),
                "可见范围": p.visibility.value,
                "运行数": p.run_count,
                "创建时间": ui.fmt_time(p.created_at),
                "更新时间": ui.fmt_time(p.updated_at),
                "详情": links.project_url(p.id),
            }
            for p in projects
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "运行数": st.column_config.NumberColumn("运行数", format="%d"),
            "详情": st.column_config.LinkColumn("详情", display_text="打开"),
        },
    )


def manage(projects: list[ProjectListItem]) -> None:
    names = {p.id: f"{p.name}（{p.status.value}）" for p in projects}
    picked, actions = st.columns([2, 3], vertical_alignment="bottom")
    project_id = picked.selectbox("选择项目", list(names), format_func=names.get, key="manage_project")
    project = next(p for p in projects if p.id == project_id)
    with actions:
        link, toggle = st.columns(2, vertical_alignment="center")
        with link:
            links.page_link(links.to_project(project.id, f"打开“{project.name}”"))
        with toggle:
            archived = project.status == ProjectStatus.ARCHIVED
            if st.button("恢复项目" if archived else "归档项目", key="toggle_archive"):
                if call(Client.update_project, project.id, status="未归档" if archived else "已归档"):
                    ui.flash("success", f"已{'恢复' if archived else '归档'}项目“{project.name}”")
                    st.rerun()


def create_form() -> None:
    with st.form("create_project"):
        left, right = st.columns(2)
        name = left.text_input("项目名称 *", key="new_name")
        owner = right.text_input("负责人 *", key="new_owner")
        description = st.text_area("描述", height=80, key="new_description")
        objective = st.text_area("目标", height=80, key="new_objective")
        first, second, third = st.columns(3)
        task_type = first.text_input("任务类型", placeholder="例如 文本摘要", key="new_task_type")
        base_model = second.text_input("基线模型", placeholder="例如 llama-2-13b", key="new_base_model")
        tags = third.text_input("标签（用逗号分隔）", placeholder="例如 科研, 第一阶段", key="new_tags")
        hyperparameters = st.text_area(
            "默认超参数（JSON 对象）", value=EXAMPLE_HYPERPARAMETERS, height=140, key="new_hyperparameters"
        )
        visibility_column, priority_column = st.columns(2)
        visibility = visibility_column.selectbox("可见范围", VISIBILITIES, help=VISIBILITY_HELP, key="new_visibility")
        default_priority = priority_column.number_input(
            "默认优先级", min_value=-100, max_value=100, value=0, step=1, help=ui.PRIORITY_HELP, key="new_priority"
        )
        if not st.form_submit_button("创建项目", type="primary", key="create_project_submit"):
            return
    try:
        fields = {
            "name": ui.required_text(name, "项目名称"),
            "owner": ui.required_text(owner, "负责人"),
            "description": ui.optional_text(description),
            "objective": ui.optional_text(objective),
            "task_type": ui.optional_text(task_type),
            "base_model": ui.optional_text(base_model),
            "tags": ui.parse_tags(tags),
            "default_hyperparameters": ui.parse_json_object(hyperparameters, "默认超参数"),
            "visibility": visibility,
            "default_priority": int(default_priority),
        }
    except ui.InputError as exc:
        st.error(str(exc))
        return
    created = call(Client.create_project, **fields)
    if created:
        ui.flash("success", f"已创建项目“{created.name}”", links.to_project(created.id, "打开项目详情"))
        st.rerun()


st.title("项目")
ui.show_flash()
filters = chosen_filters()
projects = require(Client.list_projects, **filters)
if projects:
    project_table(projects)
    manage(projects)
else:
    st.info("没有符合条件的项目。" if filters else "还没有项目，在下方创建第一个项目。")
st.subheader("新建项目")
create_form()
