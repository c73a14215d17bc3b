"""Which project/run a page shows: from the query parameters, or chosen on the page; written back to them either way.

Writing back an id that came from the query parameters is not a no-op: a st.page_link from one run's page to another
run's page shows the new run but leaves the browser's address at the old one, so a reload or a later st.rerun()
would show the old run again. Setting the parameter sends the address to the browser."""

import streamlit as st

from ltm import Client
from ltm.console import links
from ltm.console.client import require


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
