"""What a user does to a run: cancel (confirmed), download artifacts, see which checkpoints are damaged, verify one
and read its manifest, tag a checkpoint (发布 confirmed, or requested where the project asks for a second person),
resume from a checkpoint (the newest by default)."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import FAILURES, api_url, call, error_text, get_client
from ltm.console.manifest import show_manifest
from ltm.models import Artifact, ArtifactType, ReleaseState, Run, RunStatus, TagValue

CONFIRM_KEY = "confirm_cancel"
RELEASE_KEY = "confirm_release"
VERIFIED_KEY = "verified_checkpoint"
LINK_MINUTES = 10
ARTIFACT_TYPES = {"checkpoint": "检查点", "event": "TensorBoard 日志", "evaluation": "评估结果", "config": "配置文件"}


def checkpoints(run: Run) -> list[Artifact]:
    """The run's checkpoints, newest first: highest step, then latest registered (a cancel checkpoint counts)."""
    found = [a for a in run.artifacts if a.type == ArtifactType.CHECKPOINT]
    return sorted(found, key=lambda a: (a.step if a.step is not None else -1, a.created_at), reverse=True)


def checkpoint_label(artifact: Artifact) -> str:
    step = f"第 {artifact.step} 步" if artifact.step is not None else "步数未知"
    return f"{artifact.name}（{step}，{artifact.id}）"


def latest_tag(artifact: Artifact) -> str:
    return artifact.tags[-1].value.value if artifact.tags else ui.EMPTY


def tag_chain(artifact: Artifact) -> str:
    return " → ".join(event.value.value for event in artifact.tags) or ui.EMPTY


def integrity(artifact: Artifact) -> str:
    """Whether a checkpoint's files were found to differ from the SHA-256 recorded as they were written."""
    if artifact.type != ArtifactType.CHECKPOINT:
        return ui.EMPTY
    if artifact.corrupted_at is not None:
        return f"已损坏：{artifact.corruption}"
    return "未发现损坏" if artifact.checksums else "写入时未记录 SHA-256"


def download_urls(run: Run) -> dict[str, str]:
    """Absolute, short-lived signed download URLs by artifact id: the browser fetches the bytes from the API
    itself, streamed and resumable, instead of through Streamlit's memory."""
    links = call(Client.download_links, run.project_id, run.id) if run.artifacts else None
    base = api_url().rstrip("/")
    return {link.artifact_id: base + link.url for link in links.items} if links else {}


def artifact_rows(artifacts: list[Artifact], urls: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "类型": ARTIFACT_TYPES.get(a.type.value, a.type.value),
                "名称": a.name,
                "步数": ui.EMPTY if a.step is None else str(a.step),
                "大小": ui.fmt_size(a.size_bytes),
                "完整性": integrity(a),
                "当前标签": latest_tag(a),
                "标签历史": tag_chain(a),
                "创建时间": ui.fmt_time(a.created_at),
                "下载": urls.get(a.id),
                "路径": a.path,
                "ID": a.id,
            }
            for a in artifacts
        ]
    )


ARTIFACT_COLUMNS = {
    "下载": st.column_config.LinkColumn(
        "下载", display_text="下载", help=f"链接 {LINK_MINUTES} 分钟内有效，浏览器直接从 API 流式下载，可断点续传"
    ),
    "标签历史": st.column_config.TextColumn("标签历史", width="medium"),
    "完整性": st.column_config.TextColumn(
        "完整性", width="medium", help="文件是否与写入时记录的 SHA-256 一致；恢复、发布和下载前都会自动校验"
    ),
    "路径": st.column_config.TextColumn("路径", width="medium"),
}


def artifacts_section(run: Run) -> None:
    """All of the run's artifacts with their full tags and a download link each (a folder checkpoint comes as a
    tar of its files)."""
    if not run.artifacts:
        st.caption("暂无工件。")
        return
    corruption_notes(run.artifacts)
    frame = artifact_rows(run.artifacts, download_urls(run))
    st.dataframe(frame, hide_index=True, column_config=ARTIFACT_COLUMNS)
    st.caption(
        f"下载链接 {LINK_MINUTES} 分钟内有效，过期后刷新页面即可；文件夹形式的检查点下载为 tar 包。"
        " Python 中可用 Client.download_artifact 下载（中断后会续传）。"
    )


def corruption_notes(artifacts: list[Artifact]) -> None:
    for a in artifacts:
        if a.corrupted_at is not None:
            st.error(
                f"检查点 {checkpoint_label(a)}已损坏（{ui.fmt_time(a.corrupted_at)} 发现）：{a.corruption}。"
                "文件保持原样、没有删除；从它恢复、发布或下载都会被拒绝，文件复原后点“校验文件”可去掉标记。",
                icon=":material/broken_image:",
            )


def _default_newest(key: str, newest: Artifact) -> None:
    """A selectbox keeps its choice across reruns even when a newer checkpoint arrives: start again from the newest
    whenever the newest changes. The choice is set, not dropped: the browser keeps a dropped choice and sends it back
    with the next submit."""
    marker = f"{key}_newest"
    if st.session_state.get(marker) != newest.id:
        st.session_state[key] = newest.id
        st.session_state[marker] = newest.id


def cancel_control(run: Run) -> None:
    if run.status.is_terminal:
        return
    if st.session_state.get(CONFIRM_KEY) != run.id:
        if st.button("取消运行", key="cancel_run", icon=":material/stop_circle:"):
            st.session_state[CONFIRM_KEY] = run.id
            st.rerun()
        return
    st.warning(f"确认取消运行 {run.name}？训练会停止，并保留最新检查点。")
    if ui.confirmed(CONFIRM_KEY, "确认取消", "暂不取消", "cancel"):
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
    st.markdown("**检查点**")
    st.dataframe(
        artifact_rows(found, download_urls(run)).drop(columns=["类型", "路径"]),
        hide_index=True,
        column_config=ARTIFACT_COLUMNS,
    )
    by_id = {a.id: a for a in found}
    pending = st.session_state.get(RELEASE_KEY)
    if pending and pending["run_id"] == run.id and pending["artifact_id"] in by_id:
        _confirm_release(run, by_id[pending["artifact_id"]], pending)
    else:
        _tag_form(run, found)
    _tag_history(found)
    inspect_section(run, found)


def inspect_section(run: Run, found: list[Artifact]) -> None:
    """One checkpoint at a time: check its files against their SHA-256 on request, and read its manifest (fetched
    only while the expander is open)."""
    st.markdown("**校验与清单**")
    by_id = {a.id: a for a in found}
    _default_newest("inspect_artifact", found[0])
    pick, verify = st.columns([4, 1], vertical_alignment="bottom")
    artifact_id = pick.selectbox(
        "要校验或查看清单的检查点",
        list(by_id),
        index=0,
        format_func=lambda i: checkpoint_label(by_id[i]),
        key="inspect_artifact",
    )
    if verify.button(
        "校验文件", key="verify_checkpoint", icon=":material/verified_user:", help="把每个文件与写入时的 SHA-256 比较"
    ):
        _verify(run, by_id[artifact_id])
    _show_verified(artifact_id)
    with st.expander("检查点清单", key="checkpoint_manifest", on_change="rerun", icon=":material/description:") as box:
        if box.open:
            show_manifest(get_client(), run.project_id, run.id, artifact_id)


def _verify(run: Run, artifact: Artifact) -> None:
    """Verify, then rerun so every table shows the mark the check set or cleared; the verdict waits beside the
    button."""
    try:
        checked = get_client().verify_artifact(run.project_id, run.id, artifact.id)
    except FAILURES as exc:
        verdict = ("error", f"校验未通过：{error_text(exc)}")
    else:
        if checked.checksums:
            verdict = ("success", f"校验通过：{len(checked.checksums)} 个文件都与写入时记录的 SHA-256 一致")
        else:
            verdict = ("info", "这个检查点写入时没有记录 SHA-256，没有可比较的内容")
    st.session_state[VERIFIED_KEY] = (artifact.id, *verdict)
    st.rerun()


def _show_verified(artifact_id: str) -> None:
    """Once, on the run right after the check: a later run may find the files otherwise."""
    verified = st.session_state.pop(VERIFIED_KEY, None)
    if verified and verified[0] == artifact_id:
        getattr(st, verified[1])(verified[2])


def _tag_form(run: Run, found: list[Artifact]) -> None:
    by_id = {a.id: a for a in found}
    _default_newest("tag_artifact", found[0])
    with st.form("tag_checkpoint"):
        artifact_id = st.selectbox(
            "检查点", list(by_id), index=0, format_func=lambda i: checkpoint_label(by_id[i]), key="tag_artifact"
        )
        tag = st.radio("标签", [t.value for t in TagValue], horizontal=True, key="tag_value")
        notes = st.text_input("备注（可选）", key="tag_notes", placeholder="例如 验证集 BLEU 32.5，通过复核")
        submitted = st.form_submit_button("打标签", type="primary", key="tag_submit")
    if not submitted:
        return
    if tag == TagValue.RELEASE.value:
        releases = call(Client.list_releases, run.project_id)
        if releases is None:
            return
        current = releases.current
        st.session_state[RELEASE_KEY] = {
            "run_id": run.id,
            "artifact_id": artifact_id,
            "notes": ui.optional_text(notes),
            "replaces": current.artifact_id if current else None,
            "replaces_label": _release_label(current) if current else None,
            "approval": releases.approval_required,
        }
        st.rerun()
    _apply_tag(run, by_id[artifact_id], tag, ui.optional_text(notes))


def _release_label(release) -> str:
    step = f"第 {release.step} 步" if release.step is not None else "步数未知"
    return f"运行 {release.run_name or release.run_id} 的 {release.artifact_name}（{step}）"


def _confirm_release(run: Run, artifact: Artifact, pending: dict) -> None:
    replaces = pending["replaces"]
    if replaces == artifact.id:
        st.info(f"{artifact.name} 已是项目的当前发布；确认后会再记录一次发布。")
    elif replaces:
        st.warning(
            f"确认将 {artifact.name} 标记为发布？它将取代当前发布 {pending['replaces_label']}，"
            "后者的标签会自动改为“归档”。"
        )
    else:
        st.warning(f"确认将 {artifact.name} 标记为发布？项目目前没有发布的检查点，它将成为当前发布。")
    if pending.get("approval"):
        st.info("项目要求第二人批准：确认后提交发布申请，由另一位项目成员在项目页“发布”中批准后才生效。")
    if ui.confirmed(RELEASE_KEY, "确认发布", "暂不发布", "release"):
        st.session_state.pop(RELEASE_KEY)
        _release(run, artifact, pending["notes"], replaces)


def _release(run: Run, artifact: Artifact, notes: str | None, replaces: str | None) -> None:
    made = call(Client.create_release, run.project_id, artifact.id, notes=notes, replaces=replaces)
    if made is None:
        return
    if made.state == ReleaseState.PENDING:
        releases_tab = {**links.project_params(run.project_id), "tab": "发布"}
        target = {**links.to_project(run.project_id, "到项目页的“发布”查看申请"), "query_params": releases_tab}
        ui.flash(
            "info", f"已提交发布申请 #{made.number}：{artifact.name} 须由另一位项目成员批准后才成为当前发布", target
        )
    else:
        ui.flash("success", f"已为 {artifact.name} 打上“发布”标签")
    st.rerun()


def _apply_tag(run: Run, artifact: Artifact, tag: str, notes: str | None) -> None:
    tagged = call(Client.tag_artifact, run.project_id, run.id, artifact.id, tag, notes=notes)
    if tagged:
        ui.flash("success", f"已为 {tagged.name} 打上“{tag}”标签")
        st.rerun()


def _tag_history(found: list[Artifact]) -> None:
    history = [
        {
            "时间": ui.fmt_time(event.applied_at),
            "检查点": a.name,
            "标签": event.value.value,
            "操作人": event.applied_by or ui.EMPTY,
            "备注": event.notes or ui.EMPTY,
            "at": event.applied_at,
        }
        for a in found
        for event in a.tags
    ]
    st.markdown("**标签历史**")
    if not history:
        st.caption("还没有标签。")
        return
    frame = pd.DataFrame(sorted(history, key=lambda row: row["at"], reverse=True)).drop(columns=["at"])
    st.dataframe(frame, hide_index=True, column_config={"备注": st.column_config.TextColumn("备注", width="large")})


def resume_section(run: Run) -> None:
    found = checkpoints(run)
    if not found:
        st.caption("这个运行还没有检查点，无法恢复。")
        return
    by_id = {a.id: a for a in found}
    _default_newest("resume_artifact", found[0])
    with st.form("resume_run"):
        artifact_id = st.selectbox(
            "从哪个检查点恢复",
            list(by_id),
            index=0,
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
