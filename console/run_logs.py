"""Run logs: minimum level, text search, time range and pages, all filtered by the API."""

import hashlib
import math

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import ui
from ltm.console.client import call
from ltm.models import LogLevel

ALL_LEVELS = "全部"
PAGE_SIZES = [20, 50, 100, 200, 500]


@st.fragment
def logs_section(project_id: str, run_id: str) -> None:
    level, search, size = st.columns([1, 3, 1])
    minimum = level.selectbox("最低级别", [ALL_LEVELS, *(lv.value for lv in LogLevel)], key="log_level")
    query = search.text_input("搜索内容", key="log_query", placeholder="日志内容包含的文字（不区分大小写）")
    page_size = size.selectbox("每页条数", PAGE_SIZES, index=PAGE_SIZES.index(50), key="log_page_size")
    start, end, refresh = st.columns([2, 2, 1], vertical_alignment="bottom")
    start_time = start.datetime_input("开始时间（可选）", value=None, step=60, key="log_start")
    end_time = end.datetime_input("结束时间（可选）", value=None, step=60, key="log_end")
    refresh.button("刷新日志", key="log_refresh")
    if start_time and end_time and start_time > end_time:
        st.error("开始时间不能晚于结束时间")
        return
    filters = {
        "level": None if minimum == ALL_LEVELS else minimum,
        "q": query.strip() or None,
        "start_time": start_time.astimezone() if start_time else None,
        "end_time": end_time.astimezone() if end_time else None,
    }
    page_key = _page_key(run_id, page_size, filters)
    page = st.session_state.get(page_key, 1)
    result = call(Client.get_logs, project_id, run_id, page=page, page_size=page_size, **filters)
    if result is None:
        return
    pages = max(1, math.ceil(result.total / page_size))
    if not result.items:
        st.info("没有符合条件的日志。")
    else:
        st.caption(f"共 {result.total} 条日志，第 {result.page} / {pages} 页")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "时间": ui.fmt_time(item.timestamp),
                        "级别": item.level.value,
                        "内容": item.message,
                    }
                    for item in result.items
                ]
            ),
            hide_index=True,
            column_config={"内容": st.column_config.TextColumn("内容", width="large")},
        )
    if pages > 1:
        st.pagination(pages, key=page_key)


def _page_key(run_id: str, page_size: int, filters: dict) -> str:
    """A page widget per filter combination, so changing a filter starts again at page 1."""
    signature = hashlib.sha1(repr((run_id, page_size, sorted(filters.items()))).encode()).hexdigest()[:12]
    return f"log_page_{signature}"
