"""A project's releases: the one current release and every time a checkpoint was tagged 发布."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import call
from ltm.models import Project, Release


def _step(release: Release) -> str:
    return ui.EMPTY if release.step is None else str(release.step)


def releases_section(project: Project) -> None:
    releases = call(Client.list_releases, project.id)
    if releases is None:
        return
    current = releases.current
    if current is None:
        st.info("项目目前没有发布的检查点。在运行页的“检查点标签”中把一个检查点标记为“发布”，它就成为当前发布。")
    else:
        run_name = current.run_name or current.run_id
        st.markdown(f"**当前发布：{current.artifact_name}**（运行 {run_name}，第 {_step(current)} 步）")
        st.caption(
            f"由 {current.tagged_by or ui.EMPTY} 于 {ui.fmt_time(current.tagged_at)} 标记发布"
            + (f" · 备注：{current.notes}" if current.notes else "")
            + f" · 检查点 ID {current.artifact_id}"
        )
        links.page_link(links.to_run(project.id, current.run_id, f"查看运行 {run_name}"))
    st.markdown("**发布历史**")
    if not releases.history:
        st.caption("还没有发布过检查点。")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "时间": ui.fmt_time(r.tagged_at),
                    "运行": r.run_name or r.run_id,
                    "检查点": r.artifact_name,
                    "步数": _step(r),
                    "操作人": r.tagged_by or ui.EMPTY,
                    "备注": r.notes or ui.EMPTY,
                    "现在的标签": r.latest_tag.value if r.latest_tag else ui.EMPTY,
                }
                for r in releases.history
            ]
        ),
        hide_index=True,
        column_config={"备注": st.column_config.TextColumn("备注", width="large")},
    )
    st.caption("一个项目只有一个当前发布：发布新的检查点时，原来的当前发布自动改为“归档”，由同一人记录。")
