"""A project's releases (the 发布 tab): the current release with who asked for and approved it, its frozen copy and
manifest; the requests waiting for a second person; every move in the history with who and when; rollback to an
earlier release, withdrawal by admins and the project's approval setting."""

import json
import tempfile

import pandas as pd
import streamlit as st

from ltm import ApiError, Client
from ltm.console import links, ui
from ltm.console.client import FAILURES, call, error_text, get_client
from ltm.console.manifest import lineage_chain, show_manifest
from ltm.models import CheckpointManifest, Identity, Project, ProjectReleases, Release
from ltm.vocabulary import ReleaseState, Role

ROLLBACK_KEY = "confirm_rollback"
WITHDRAW_KEY = "confirm_withdraw"
STATE_COLORS = {
    ReleaseState.PENDING: "orange",
    ReleaseState.CURRENT: "green",
    ReleaseState.SUPERSEDED: "gray",
    ReleaseState.REJECTED: "red",
    ReleaseState.WITHDRAWN: "violet",
}
ROLLBACK_TARGETS = (ReleaseState.SUPERSEDED, ReleaseState.WITHDRAWN)


def releases_section(project: Project) -> None:
    releases = call(Client.list_releases, project.id)
    me = call(Client.whoami)
    if releases is None or me is None:
        return
    approval_setting(project, releases, me)
    current_release(project, releases.current, me)
    pending_requests(project, releases.pending, me)
    history_section(project, releases, me)


# ---- who may do what (the API decides; the console only explains in advance)


def may_move(me: Identity, project: Project) -> bool:
    """Release, roll back and change the approval setting: the project's owner or an admin."""
    return me.role == Role.ADMIN or (me.role == Role.MEMBER and me.user == project.owner)


def may_decide(me: Identity, project: Project) -> bool:
    """Approve or reject: an admin, the owner or a member of the project."""
    if me.role == Role.ADMIN or (me.role == Role.MEMBER and me.user == project.owner):
        return True
    if me.role != Role.MEMBER:
        return False
    members = call(Client.list_members, project.id)
    return bool(members and me.user in members.members)


# ---- labels


def _step(release: Release) -> str:
    return ui.EMPTY if release.step is None else str(release.step)


def release_label(release: Release) -> str:
    run = release.run_name or release.run_id
    return f"#{release.number} {release.artifact_name}（运行 {run}，第 {_step(release)} 步）"


def _requested(release: Release) -> str:
    notes = f"：{release.notes}" if release.notes else ""
    return f"{release.action.value}由 {release.tagged_by or ui.EMPTY} 于 {ui.fmt_time(release.tagged_at)} 申请{notes}"


def _decided(release: Release) -> str:
    if release.decided_by is None:
        return "" if release.state == ReleaseState.PENDING else "无需第二人批准"
    verb = "拒绝" if release.state == ReleaseState.REJECTED else "批准"
    notes = f"：{release.decision_notes}" if release.decision_notes else ""
    return f"{release.decided_by} 于 {ui.fmt_time(release.decided_at)} {verb}{notes}"


def who_and_when(release: Release) -> str:
    parts = [_requested(release), _decided(release)]
    if release.withdrawn_by:
        parts.append(f"管理员 {release.withdrawn_by} 于 {ui.fmt_time(release.withdrawn_at)} 撤销")
    return " · ".join(part for part in parts if part)


def _state_badge(release: Release) -> None:
    st.badge(release.state.value, color=STATE_COLORS.get(release.state, "gray"))


# ---- the approval setting


def approval_setting(project: Project, releases: ProjectReleases, me: Identity) -> None:
    allowed = may_move(me, project)
    wanted = st.toggle(
        "发布须经第二人批准",
        value=releases.approval_required,
        key=f"release_approval_{project.id}_{project.version}",
        disabled=not allowed,
        help="开启后，发布和回滚先成为“待批准”，由申请人以外的另一位项目成员批准后才生效",
    )
    if not allowed:
        st.caption(f"只有项目负责人（{project.owner}）或管理员可以修改这项设置；你是 {me.user}（{me.role}）。")
    if wanted == releases.approval_required:
        return
    if call(Client.update_project, project.id, release_approval=wanted):
        ui.flash("success", "已开启：发布须经第二人批准" if wanted else "已关闭：发布无需第二人批准，立即生效")
        st.rerun()


# ---- the current release


def current_release(project: Project, current: Release | None, me: Identity) -> None:
    st.subheader("当前发布")
    if current is None:
        st.info("项目目前没有当前发布。在运行页的“检查点标签”中把一个检查点标记为“发布”，它就成为当前发布。")
        return
    run = current.run_name or current.run_id
    heading, badge = st.columns([6, 1], vertical_alignment="center")
    heading.markdown(f"**当前发布：{current.artifact_name}**（运行 {run}，第 {_step(current)} 步）")
    with badge:
        _state_badge(current)
    st.caption(f"#{current.number} · {who_and_when(current)} · 检查点 ID {current.artifact_id}")
    frozen_line(current)
    run_exists = _run_exists(project.id, current.run_id)
    if run_exists:
        links.page_link(links.to_run(project.id, current.run_id, f"查看运行 {run}"))
    else:
        st.caption(f"运行 {run} 已删除；冻结副本和发布时记录的清单仍在。")
    download_control(project.id, current)
    manifest_expander(project.id, current, run_exists)
    withdraw_control(project, current, me)


def frozen_line(release: Release) -> None:
    if release.frozen:
        files = len(release.checksums or {})
        st.success(
            f"已冻结：{files} 个文件复制到发布目录并记录了 SHA-256，删除运行、保留策略和压缩都不会碰到它。",
            icon=":material/lock:",
        )
    else:
        st.warning(f"没有冻结副本：{release.frozen_note or '原因未记录'}", icon=":material/lock_open:")


def _run_exists(project_id: str, run_id: str) -> bool:
    try:
        get_client().get_run(project_id, run_id)
    except FAILURES as exc:
        if isinstance(exc, ApiError) and exc.status_code == 404:
            return False
        st.caption(f"无法确认运行是否还在：{error_text(exc)}")
    return True


def download_control(project_id: str, release: Release) -> None:
    """The frozen copy comes through the API, which checks it against its SHA-256 first: one click fetches it (and
    says why if it cannot), a second saves it."""
    if not release.frozen:
        return
    if not st.button("准备下载冻结副本", key=f"prepare_{release.id}", icon=":material/download:"):
        st.caption("下载前 API 会再次核对冻结副本的 SHA-256；文件夹形式的检查点下载为 tar 包。")
        return
    with st.spinner("正在从 API 取回冻结副本 …"), tempfile.TemporaryDirectory() as folder:
        saved = call(Client.download_release, project_id, release.id, folder)
        if saved is None:
            return
        name, data = f"release-{release.number}-{saved.name}", saved.read_bytes()
    st.download_button(
        f"保存 {name}（{ui.fmt_size(len(data))}）",
        data=data,
        file_name=name,
        mime="application/x-tar" if name.endswith(".tar") else "application/octet-stream",
        key=f"download_{release.id}",
        on_click="ignore",
        type="primary",
        icon=":material/save:",
    )


def manifest_expander(project_id: str, release: Release, run_exists: bool | None = None) -> None:
    """Read only when opened: the checkpoint's manifest while its run exists, else the one recorded at release."""
    with st.expander("清单", key=f"manifest_{release.id}", on_change="rerun", icon=":material/description:") as box:
        if not box.open:
            return
        if run_exists is None:
            run_exists = _run_exists(project_id, release.run_id)
        if run_exists:
            show_manifest(get_client(), project_id, release.run_id, release.artifact_id)
        else:
            stored_manifest(project_id, release)


def stored_manifest(project_id: str, release: Release) -> None:
    try:
        manifest = get_client().release_manifest(project_id, release.id)
    except FAILURES as exc:
        st.caption(f"运行已删除，发布时记录的清单也无法读取：{error_text(exc)}")
        return
    st.caption("运行已删除：以下是发布时记录的清单。")
    _stored_summary(manifest)
    st.download_button(
        "下载清单（JSON）",
        data=json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, indent=2),
        file_name=f"release-{release.number}-manifest.json",
        mime="application/json",
        key=f"manifest_json_{release.id}",
        icon=":material/download:",
    )


def _stored_summary(manifest: CheckpointManifest) -> None:
    checkpoint = manifest.checkpoint
    st.markdown(f"**检查点 {checkpoint.name}**（{checkpoint.id}，第 {ui.fmt_value(checkpoint.step)} 步）")
    st.markdown(f"**谱系**：{lineage_chain(manifest.lineage)}")
    st.markdown(f"**代码版本**：{manifest.run.code_version or '未记录'}")
    tables = [
        ("文件的 SHA-256", [{"文件": n, "SHA-256": d} for n, d in (checkpoint.checksums or {}).items()]),
        ("超参数", [{"超参数": k, "取值": ui.fmt_value(v)} for k, v in sorted(manifest.run.hyperparameters.items())]),
        ("最终评估指标", [{"指标": k, "取值": f"{v:.6g}"} for k, v in manifest.final_metrics.values.items()]),
    ]
    for title, rows in tables:
        st.markdown(f"**{title}**")
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)
        else:
            st.caption("没有记录")


def withdraw_control(project: Project, current: Release, me: Identity) -> None:
    if me.role != Role.ADMIN:
        st.caption(f"撤销发布只有管理员可以操作；你是 {me.user}（{me.role}）。")
        return
    if st.session_state.get(WITHDRAW_KEY) != current.id:
        if st.button("撤销发布", key="withdraw_release", icon=":material/remove_done:"):
            st.session_state[WITHDRAW_KEY] = current.id
            st.rerun()
        return
    st.warning(
        f"确认撤销发布 {release_label(current)}？项目将没有当前发布；这次发布和它的冻结副本保留在历史中"
        "（状态为已撤销），检查点追加“归档”标签。"
    )
    notes = st.text_input(
        "撤销原因（必填，记入审计记录）",
        key="withdraw_notes",
        persist_state="page",
        placeholder="例如 发现评估数据泄漏",
    )
    if not ui.confirmed(WITHDRAW_KEY, "确认撤销", "暂不撤销", "withdraw"):
        return
    try:
        reason = ui.required_text(notes, "撤销原因")
    except ui.InputError as exc:
        st.error(str(exc))
        return
    withdrawn = call(Client.withdraw_release, project.id, notes=reason)
    if withdrawn:
        st.session_state.pop(WITHDRAW_KEY)
        ui.flash("success", f"已撤销发布 #{withdrawn.number}，项目目前没有当前发布")
        st.rerun()


# ---- requests waiting for a second person


def pending_requests(project: Project, pending: list[Release], me: Identity) -> None:
    if not pending:
        return
    st.subheader(f"待批准的申请（{len(pending)}）")
    member = may_decide(me, project)
    for release in pending:
        with st.container(border=True):
            pending_request(project, release, me, member)


def pending_request(project: Project, release: Release, me: Identity, member: bool) -> None:
    heading, badge = st.columns([6, 1], vertical_alignment="center")
    heading.markdown(f"**{release.action.value} {release_label(release)}**")
    with badge:
        _state_badge(release)
    st.caption(who_and_when(release))
    frozen_line(release)
    manifest_expander(project.id, release)
    reason = approval_refused(release, me, member)
    notes = st.text_input(
        "批准或拒绝的说明（可选）", key=f"decision_notes_{release.id}", persist_state="page", disabled=not member
    )
    approve, reject, _ = st.columns([1, 1, 4])
    approved = approve.button("批准", key=f"approve_{release.id}", type="primary", disabled=bool(reason), help=reason)
    rejected = reject.button("拒绝", key=f"reject_{release.id}", disabled=not member)
    if reason:
        st.caption(reason)
    if approved:
        done = call(Client.approve_release, project.id, release.id, notes=ui.optional_text(notes))
        if done:
            ui.flash("success", f"已批准 #{done.number}：{done.artifact_name} 成为项目的当前发布")
            st.rerun()
    if rejected:
        done = call(Client.reject_release, project.id, release.id, notes=ui.optional_text(notes))
        if done:
            ui.flash("info", f"已拒绝 #{done.number}（{done.artifact_name}），当前发布不变")
            st.rerun()


def approval_refused(release: Release, me: Identity, member: bool) -> str | None:
    """Why `me` may not approve this request, or None."""
    if release.tagged_by == me.user:
        return f"你（{me.user}）是这次申请的申请人，须由另一位项目成员批准"
    if not member:
        return f"只有项目负责人、项目成员或管理员可以批准或拒绝；你是 {me.user}（{me.role}）"
    return None


# ---- history and rollback


def history_section(project: Project, releases: ProjectReleases, me: Identity) -> None:
    st.subheader("发布历史")
    if not releases.history:
        st.caption("还没有发布过检查点。")
        return
    st.dataframe(history_frame(releases.history), hide_index=True, column_config=HISTORY_COLUMNS)
    st.caption(
        "一个项目只有一个当前发布：新的发布或回滚生效时，原来的当前发布变为“已被取代”，它的检查点自动追加“归档”标签。"
    )
    rollback_control(project, releases, me)


HISTORY_COLUMNS = {
    **{name: st.column_config.TextColumn(name, width="small") for name in ("序号", "操作", "状态", "步数")},
    "备注": st.column_config.TextColumn("备注", width="medium"),
    "批准/拒绝说明": st.column_config.TextColumn("批准/拒绝说明", width="medium"),
}


OPTIONAL_COLUMNS = (("批准/拒绝", "批准/拒绝时间", "批准/拒绝说明"), ("撤销人", "撤销时间"))


def history_frame(history: list[Release]) -> pd.DataFrame:
    """Every move with who and when; the approval and withdrawal columns only once someone decided or withdrew."""
    frame = pd.DataFrame(
        [
            {
                "序号": f"#{r.number}",
                "操作": r.action.value,
                "状态": r.state.value,
                "运行": r.run_name or r.run_id,
                "检查点": r.artifact_name,
                "步数": _step(r),
                "备注": r.notes or ui.EMPTY,
                "申请人": r.tagged_by or ui.EMPTY,
                "申请时间": ui.fmt_time(r.tagged_at),
                "批准/拒绝": r.decided_by or ui.EMPTY,
                "批准/拒绝时间": ui.fmt_time(r.decided_at),
                "批准/拒绝说明": r.decision_notes or ui.EMPTY,
                "撤销人": r.withdrawn_by or ui.EMPTY,
                "撤销时间": ui.fmt_time(r.withdrawn_at),
                "冻结副本": "是" if r.frozen else f"否：{r.frozen_note or '原因未记录'}",
                "现在的标签": r.latest_tag.value if r.latest_tag else ui.EMPTY,
            }
            for r in history
        ]
    )
    unused = [group for group in OPTIONAL_COLUMNS if (frame[group[0]] == ui.EMPTY).all()]
    return frame.drop(columns=[column for group in unused for column in group])


def rollback_control(project: Project, releases: ProjectReleases, me: Identity) -> None:
    targets = {r.id: r for r in releases.history if r.state in ROLLBACK_TARGETS}
    if not targets:
        return
    st.markdown("**回滚**")
    if not may_move(me, project):
        st.caption(f"只有项目负责人（{project.owner}）或管理员可以回滚发布；你是 {me.user}（{me.role}）。")
        return
    asked = st.session_state.get(ROLLBACK_KEY)
    if asked and asked["project_id"] == project.id and asked["release_id"] in targets:
        confirm_rollback(project, releases, targets[asked["release_id"]], asked["notes"])
        return
    chosen = st.selectbox(
        "回滚到",
        list(targets),
        format_func=lambda i: f"{release_label(targets[i])}，{targets[i].state.value}",
        key="rollback_target",
        persist_state="page",
        help="只能回滚到已被取代或已撤销的发布；它的冻结副本重新成为当前发布，记录为一次“回滚”",
    )
    notes = st.text_input(
        "回滚原因（可选）", key="rollback_notes", persist_state="page", placeholder="例如 新版本线上指标回退"
    )
    if st.button("回滚到此发布", key="rollback_submit", icon=":material/history:"):
        st.session_state[ROLLBACK_KEY] = {"project_id": project.id, "release_id": chosen, "notes": notes}
        st.rerun()


def confirm_rollback(project: Project, releases: ProjectReleases, target: Release, notes: str) -> None:
    current = releases.current
    replaced = f"当前发布 {release_label(current)} 将变为“已被取代”" if current else "项目目前没有当前发布"
    approval = "；项目要求第二人批准，回滚先成为待批准的申请" if releases.approval_required else ""
    st.warning(f"确认回滚到发布 {release_label(target)}？它的冻结副本将重新成为当前发布，{replaced}{approval}。")
    # The form is not drawn while confirming: 暂不 gives back what was chosen and typed.
    restore = {"rollback_target": target.id, "rollback_notes": notes}
    if not ui.confirmed(ROLLBACK_KEY, "确认回滚", "暂不回滚", "rollback", restore):
        return
    st.session_state.pop(ROLLBACK_KEY)
    made = call(Client.rollback_release, project.id, target.id, notes=ui.optional_text(notes))
    if made is None:
        return
    if made.state == ReleaseState.PENDING:
        ui.flash("info", f"已提交回滚申请 #{made.number}，须由另一位项目成员批准后生效")
    else:
        ui.flash("success", f"已回滚：#{made.number} {made.artifact_name} 成为项目的当前发布")
    st.rerun()
