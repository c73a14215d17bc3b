"""Which project/run a page shows: from the query parameters, or chosen on the page; written back to them either way.

Writing back an id that came from the query parameters is not a no-op: a st.page_link from one run's page to another
run's page shows the new run but leaves the browser's address at the old one, so a reload or a later st.rerun()
would show the old run again. Setting the parameter sends the address to the browser."""

import time
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from ltm import ApiError, Client
from ltm.console import links
from ltm.console.client import FAILURES, call, error_text, get_client, require
from ltm.models import Project, Run

T = TypeVar("T")
FRESH_SECONDS = 1.0
_RUN_READ = "run_read"


def project_id() -> str:
    chosen = st.query_params.get("project_id")
    if chosen:
        st.query_params["project_id"] = chosen
        return chosen
    projects = require(Client.list_projects)
    if not projects:
        st.info("还没有项目，请先创建一个项目。")
        links.page_link(links.to_projects("去创建项目"))
        st.stop()
    names = {p.id: f"{p.name}（{p.status.value}）" for p in projects}
    chosen = st.selectbox("选择项目", list(names), format_func=names.get, index=None, placeholder="请选择项目")
    if chosen is None:
        st.stop()
    st.query_params["project_id"] = chosen
    return chosen


def run_id(project_id: str) -> str:
    chosen = st.query_params.get("run_id")
    if chosen:
        st.query_params["run_id"] = chosen
        return chosen
    runs = require(Client.list_runs, project_id)
    if not runs:
        st.info("该项目还没有运行。")
        links.page_link(links.to_project(project_id, "去项目详情发起运行"))
        st.stop()
    names = {r.id: f"{r.name}（{r.status.value}）" for r in runs}
    chosen = st.selectbox("选择运行", list(names), format_func=names.get, index=None, placeholder="请选择运行")
    if chosen is None:
        st.stop()
    st.query_params["run_id"] = chosen
    return chosen


def existing_project(project_id: str) -> Project:
    """The project the address names (without its runs list, which can be long); an unknown id ends the page with a
    way back to the projects list."""
    return _existing(Client.get_project, project_id, False, missing=f"找不到项目 {project_id}")


def existing_run(project_id: str, run_id: str) -> Run:
    """The run the address names, read afresh; an unknown project or run ends the page with a way back."""
    run = _existing(Client.get_run, project_id, run_id, missing=f"找不到运行 {run_id}", project_id=project_id)
    return _remember(run)


def fresh_run(project_id: str, run_id: str) -> Run | None:
    """The run as this session read it within the last second, else read now: a run page's sections, drawn together
    on a page load or a refresh, read the run once between them, not once each."""
    read_at, run = st.session_state.get(_RUN_READ, (0.0, None))
    if run is not None and run.id == run_id and time.monotonic() - read_at < FRESH_SECONDS:
        return run
    run = call(Client.get_run, project_id, run_id)
    return None if run is None else _remember(run)


def _remember(run: Run) -> Run:
    st.session_state[_RUN_READ] = (time.monotonic(), run)
    return run


def _existing(action: Callable[..., T], *args, missing: str, project_id: str | None = None) -> T:
    try:
        return action(get_client(), *args)
    except ApiError as exc:
        if exc.status_code != 404:
            return require(action, *args)
        back_to = project_id if exc.detail.startswith("运行") else None  # the run is missing, its project is not
        not_found(error_text(exc), missing, back_to)
    except FAILURES:  # unreachable API, timeouts: the shared handling shows why and retries
        return require(action, *args)


def not_found(error: str, missing: str, project_id: str | None = None) -> None:
    """A 404 page: what was not found, and links back."""
    st.title("未找到")
    st.error(error, icon=":material/search_off:")
    st.caption(f"{missing}。链接可能已过期，或它已被删除。")
    if project_id:
        links.page_link(links.to_project(project_id, "返回所属项目"))
    links.page_link(links.to_projects("返回项目列表"))
    st.stop()
