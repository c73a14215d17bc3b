"""What a user does to a run: cancel (confirmed), tag a checkpoint, resume from a checkpoint."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import call
from ltm.models import Artifact, ArtifactType, Run, RunStatus, TagValue

CONFIRM_KEY = "confirm_cancel"


def checkpoints(run: Run) -> list[Artifact]:
    return [a for a in run.artifacts if a.type == ArtifactType.CHECKPOINT]


def checkpoint_label(artifact: Artifact) -> str:
    step = f"第 {artifact.step} 步" if artifact.step is not None else "步数未知"
    return f"{artifact.name}（{step}，{artifact.id}）"


def cancel_control(run: Run) -> None:
    if run.status.is_terminal:
        return
    if st.session_state.get(CONFIRM_KEY) != run.id:
        if st.button("取消运行", key="cancel_run", icon=":material/stop_circle:"):
            st.session_state[CONFIRM_KEY] = run.id
            st.rerun()
        return
    st.warning(f"确认取消运行 {run.name}？训练会停止，并保留最新检查点。")
    confirm, back, _ = st.columns([1, 1, 4])
    if back.button("暂不取消", key="cancel_back"):
        st.session_state.pop(CONFIRM_KEY)
        st.rerun()
    if confirm.button("确认取消", key="cancel_confirm", type="primary"):
        st.session_state.pop(CONFIRM_KEY)
        cancelled = call(Client.cancel_run, run.project_id, run.id)
        if cancelled:
            done = cancelled.status == RunStatus.CANCELLED
            ui.flash(
                "success" if done else "info", "运行已取消。" if done else "已请求取消，运行正在保存检查点（取消中）。"
            )
            st.rerun()


def tag_section(run: Run) -> None:
    found = checkpoints(run)
    if not found:
        st.caption("这个运行还没有检查点。")
        return
    by_id = {a.id: a for a in found}
    with st.form("tag_checkpoint"):
        artifact_id = st.selectbox(
            "检查点", list(by_id), format_func=lambda i: checkpoint_label(by_id[i]), key="tag_artifact"
        )
        tag = st.radio("标签", [t.value for t in TagValue], horizontal=True, key="tag_value")
        notes = st.text_input("备注（可选）", key="tag_notes", placeholder="例如 验证集 BLEU 32.5，通过复核")
        if st.form_submit_button("打标签", type="primary", key="tag_submit"):
            tagged = call(Client.tag_artifact, run.project_id, run.id, artifact_id, tag, notes=ui.optional_text(notes))
            if tagged:
                ui.flash("success", f"已为 {tagged.name} 打上“{tag}”标签")
                st.rerun()
    history = [
        {
            "检查点": a.name,
            "标签": event.value.value,
            "备注": event.notes or ui.EMPTY,
            "时间": ui.fmt_time(event.applied_at),
        }
        for a in found
        for event in a.tags
    ]
    st.markdown("**标签历史**")
    if history:
        st.dataframe(pd.DataFrame(sorted(history, key=lambda row: row["时间"], reverse=True)), hide_index=True)
    else:
        st.caption("还没有标签。")


def resume_section(run: Run) -> None:
    found = checkpoints(run)
    if not found:
        st.caption("这个运行还没有检查点，无法恢复。")
        return
    by_id = {a.id: a for a in found}
    latest = max(range(len(found)), key=lambda i: found[i].step or -1)
    with st.form("resume_run"):
        artifact_id = st.selectbox(
            "从哪个检查点恢复",
            list(by_id),
            index=latest,
            format_func=lambda i: checkpoint_label(by_id[i]),
            key="resume_artifact",
        )
        name = st.text_input("新运行名称（可选）", key="resume_name")
        hyperparameters = st.text_area(
            "覆盖的超参数（JSON 对象，可选，只填写要修改的键）",
            key="resume_hp",
            placeholder='{"learning_rate": 1.5e-5}',
            height=100,
        )
        submitted = st.form_submit_button("从检查点恢复", type="primary", key="resume_submit")
    if not submitted:
        return
    try:
        overrides = {
            "name": ui.optional_text(name),
            "hyperparameters": ui.parse_json_object(hyperparameters, "覆盖的超参数") or None,
        }
    except ui.InputError as exc:
        st.error(str(exc))
        return
    resumed = call(Client.resume_run, run.project_id, run.id, artifact_id, **overrides)
    if resumed:
        ui.flash(
            "success",
            f"已从 {by_id[artifact_id].name} 恢复，新运行 {resumed.name}（{resumed.status.value}）",
            links.to_run(run.project_id, resumed.id, f"查看新运行 {resumed.name}"),
        )
        st.rerun()
