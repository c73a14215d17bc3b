"""The resume-fidelity badge of a resumed run: whether it continued its parent step for step (GET …/fidelity)."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console.client import FAILURES, error_text
from ltm.models import ResumeFidelity, Run

COLORS = {"一致": "green", "不一致": "red"}
ICONS = {"一致": ":material/verified:", "不一致": ":material/difference:"}


def show_fidelity(client: Client, run: Run) -> None:
    """A badge and one sentence; for a run that differs, its first differing point per metric and the environment
    facts that differ. Nothing for a run that was not resumed from a checkpoint."""
    if run.parent_run_id is None:
        return
    try:
        fidelity = client.resume_fidelity(run.project_id, run.id)
    except FAILURES as exc:
        st.caption(f"恢复保真度暂时无法读取：{error_text(exc)}")
        return
    st.badge(
        f"恢复保真度：{fidelity.status}",
        icon=ICONS.get(fidelity.status, ":material/help:"),
        color=COLORS.get(fidelity.status, "gray"),
    )
    st.caption(fidelity.summary)
    if fidelity.points_compared:
        st.caption(
            f"比较了 {len(fidelity.metrics_compared)} 个指标的 {fidelity.points_compared} 个点"
            f"（{'、'.join(fidelity.metrics_compared)}）；浮点数完全相等才算一致"
        )
    if fidelity.differences:
        st.dataframe(_differences(fidelity), hide_index=True)
    if fidelity.environment_differences:
        st.dataframe(_environment(fidelity), hide_index=True)


def _differences(fidelity: ResumeFidelity) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "指标": d.metric,
                "第一个不同的步": d.step,
                "原运行": repr(d.parent_value),
                "本运行": repr(d.run_value),
                "差值": f"{d.absolute_difference:+.3g}",
                "相对差": "—" if d.relative_difference is None else f"{d.relative_difference:+.2%}",
            }
            for d in fidelity.differences
        ]
    )


def _environment(fidelity: ResumeFidelity) -> pd.DataFrame:
    return pd.DataFrame([{"环境": d.key, "不同之处": d.summary} for d in fidelity.environment_differences])
