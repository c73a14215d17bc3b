"""The project's audit trail: who did what, naming runs and checkpoints rather than their ids."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import ui
from ltm.console.client import call
from ltm.models import Project

LIMIT = 200


def audit_section(project: Project) -> None:
    """Who changed the project, started, cancelled (here or in Prefect) or resumed runs and tagged checkpoints."""
    events = call(Client.audit_trail, project.id, limit=LIMIT)
    if events is None:
        return
    if not events:
        st.caption("还没有审计记录。")
        return
    actions = sorted({e.action for e in events})
    chosen = st.multiselect("操作", actions, key="audit_actions", persist_state="page", placeholder="全部操作")
    shown = [e for e in events if not chosen or e.action in chosen]
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "时间": ui.fmt_time(e.occurred_at),
                    "操作者": e.actor,
                    "操作": e.action,
                    "运行": e.run_name or e.run_id or ui.EMPTY,
                    "对象": e.target or ui.EMPTY,
                    "详情": e.details or ui.EMPTY,
                }
                for e in shown
            ],
            columns=["时间", "操作者", "操作", "运行", "对象", "详情"],
        ),
        hide_index=True,
        column_config={"详情": st.column_config.TextColumn("详情", width="large")},
    )
    st.caption(
        f"最近 {len(events)} 条记录（最多 {LIMIT} 条），最新的在前。在 Prefect 中取消的运行，操作者记为 Prefect。"
    )
