"""The run page's part about runs that survive: labels from the project's log rules, the chain of automatic
restarts, and a hang."""

import re

import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import call
from ltm.models import Project, Run, RunOverview, RunStatus

_RESTARTED_AS = re.compile(r"已自动重试为 (run_\w+)")


def show_survival(run: Run, project: Project) -> None:
    labels(run)
    hang(run)
    restarts(run, project)


def labels(run: Run) -> None:
    if run.labels:
        badges = " ".join(f":orange-badge[{_plain(label)}]" for label in run.labels)
        st.markdown(f"**日志规则标签**：{badges}")


def hang(run: Run) -> None:
    if run.hung_at is None:
        return
    progressed = ui.fmt_time(run.progressed_at or run.started_at)
    found = f"{ui.fmt_time(run.hung_at)} 判定卡住，最近一次步数前进在 {progressed}"
    if run.status == RunStatus.RUNNING:
        st.warning(f"{found}：{run.message or ''}。已请求运行保存检查点后停止", icon=":material/hourglass_empty:")
    else:
        st.error(f"{found}。{run.message or ''}", icon=":material/hourglass_empty:")


def restarts(run: Run, project: Project) -> None:
    """Which failed run this one retries, which run retried this one, and how many restarts the chain has."""
    allowed = run.max_restarts if run.max_restarts is not None else project.max_restarts
    origin = call(Client.get_run, run.project_id, run.restart_of) if run.restart_of else None
    retried_as = _retried_as(run) if run.status == RunStatus.FAILED else None
    if not (origin or retried_as or allowed):
        return
    where = "运行设置" if run.max_restarts is not None else "项目设置"
    which = f"，本运行是第 {run.restarts} 次重试" if run.restarts else ""
    st.caption(f"失败后自动重试：最多 {allowed} 次（{where}）{which}")
    if origin is not None:
        kind = "被抢占后重新排队，原运行" if origin.preempted_by else f"第 {run.restarts} 次自动重试，重试的是"
        st.markdown(f"{kind}：")
        links.page_link(links.to_run(run.project_id, origin.id, f"{origin.name}（{origin.status.value}）"))
    if retried_as is not None:
        st.markdown("已自动重试为：")
        links.page_link(links.to_run(run.project_id, retried_as.id, f"{retried_as.name}（{retried_as.status.value}）"))


def _retried_as(run: Run) -> RunOverview | None:
    """The restart of a failed run: resumed from its checkpoint (a child), or, when it saved none, named in its
    message."""
    children = call(Client.search_runs, run.project_id, parent=run.id, limit=50)
    found = [child for child in (children.items if children else []) if child.restart_of == run.id]
    if found:
        return found[0]
    named = _RESTARTED_AS.search(run.message or "")
    return call(Client.get_run, run.project_id, named.group(1)) if named else None


def _plain(text: str) -> str:
    """A label inside a badge's brackets, so that no bracket or colon in it ends the badge early."""
    return text.replace("[", "［").replace("]", "］").replace(":", "：")
