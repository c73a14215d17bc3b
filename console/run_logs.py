"""Run logs: an active run's newest lines, refreshing by themselves, or pages of them; filtered by the API."""

import hashlib
import math
from datetime import datetime

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import pickers, ui
from ltm.console.client import call
from ltm.models import LogLevel, LogPage

ALL_LEVELS = "全部"
PAGE_SIZES = [20, 50, 100, 200, 500]
FOLLOW_SECONDS = 2
OLDEST_FIRST, NEWEST_FIRST = "最早的在前", "最新的在前"
TIME_EXAMPLE = "2026-12-05 08:30:15"
TIME_PLACEHOLDER = f"例如 {TIME_EXAMPLE}"
TIME_HELP = f"本地时间，精确到秒，例如 {TIME_EXAMPLE}；可以直接粘贴日志表格里的时间"
FOLLOW_HELP = f"跟随时显示最新的日志，每 {FOLLOW_SECONDS} 秒刷新一次；暂停后可以翻页"


@st.fragment
def logs_section(project_id: str, run_id: str) -> None:
    run = pickers.fresh_run(project_id, run_id)
    active = run is not None and not run.status.is_terminal
    level, search, size = st.columns([1, 3, 1])
    minimum = level.selectbox("最低级别", [ALL_LEVELS, *(lv.value for lv in LogLevel)], key="log_level")
    query = search.text_input("搜索内容", key="log_query", placeholder="日志内容包含的文字（不区分大小写）")
    page_size = size.selectbox("每页条数", PAGE_SIZES, index=PAGE_SIZES.index(50), key="log_page_size")
    start, end, mode = st.columns([2, 2, 1], vertical_alignment="bottom")
    start_text = start.text_input("开始时间（可选）", key="log_start", placeholder=TIME_PLACEHOLDER, help=TIME_HELP)
    end_text = end.text_input("结束时间（可选）", key="log_end", placeholder=TIME_PLACEHOLDER, help=TIME_HELP)
    if active:
        paused = mode.toggle("暂停跟随", key=f"log_pause_{run_id}", help=FOLLOW_HELP)
    else:
        paused = True
        mode.button("刷新日志", key="log_refresh")
    try:
        start_time, end_time = parse_time(start_text, "开始时间"), parse_time(end_text, "结束时间")
    except ui.InputError as exc:
        st.error(str(exc))
        return
    if start_time and end_time and start_time > end_time:
        st.error("开始时间不能晚于结束时间")
        return
    filters = {"level": None if minimum == ALL_LEVELS else minimum, "q": query.strip() or None}
    filters |= {"start_time": start_time, "end_time": end_time}
    if paused:
        order = st.segmented_control(
            "排序", [OLDEST_FIRST, NEWEST_FIRST], default=OLDEST_FIRST, required=True, key="log_order"
        )
        _pages(project_id, run_id, page_size, filters, newest_first=order == NEWEST_FIRST)
    else:
        st.fragment(_follow, run_every=FOLLOW_SECONDS)(project_id, run_id, page_size, filters)


def parse_time(text: str, field: str) -> datetime | None:
    """A local date and time typed by the user (to the second), as an aware datetime; None when left empty."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise ui.InputError(f"{field}格式无效：请写成 {TIME_EXAMPLE} 这样的本地时间（秒可省略）") from None
    return value if value.tzinfo else value.astimezone()


def _follow(project_id: str, run_id: str, page_size: int, filters: dict) -> None:
    result = call(Client.get_logs, project_id, run_id, page=1, page_size=page_size, order="desc", **filters)
    if result is None:
        return
    if not result.items:
        _empty(project_id, run_id, filters, following=True)
        return
    st.caption(
        f"共 {result.total} 条日志 · 跟随中：显示最新 {len(result.items)} 条，最新的在最上面，"
        f"每 {FOLLOW_SECONDS} 秒刷新（最后刷新 {datetime.now().strftime('%H:%M:%S')}）"
    )
    _table(result)


def _pages(project_id: str, run_id: str, page_size: int, filters: dict, newest_first: bool) -> None:
    page_key = _page_key(run_id, page_size, newest_first, filters)
    order = "desc" if newest_first else None
    page = st.session_state.get(page_key, 1)
    result = call(Client.get_logs, project_id, run_id, page=page, page_size=page_size, order=order, **filters)
    if result is None:
        return
    pages = max(1, math.ceil(result.total / page_size))
    if page > pages:  # the remembered page no longer exists: show the last one that does
        st.session_state[page_key] = page = pages
        result = call(Client.get_logs, project_id, run_id, page=page, page_size=page_size, order=order, **filters)
        if result is None:
            return
    if not result.items:
        _empty(project_id, run_id, filters, following=False)
        return
    st.caption(f"共 {result.total} 条日志，第 {result.page} / {pages} 页")
    _table(result)
    if pages > 1:
        st.pagination(pages, key=page_key)


def _empty(project_id: str, run_id: str, filters: dict, following: bool) -> None:
    """Tell a run without logs from filters that match none of its lines."""
    if any(value is not None for value in filters.values()):
        everything = call(Client.get_logs, project_id, run_id, page=1, page_size=1)
        if everything is not None and everything.total:
            st.info(f"没有符合筛选条件的日志（这个运行共有 {everything.total} 条日志）。")
            return
    st.info("这个运行还没有日志。" + ("有新日志时会自动显示。" if following else ""))


def _table(result: LogPage) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {"时间": ui.fmt_time(item.timestamp), "级别": item.level.value, "内容": item.message}
                for item in result.items
            ]
        ),
        hide_index=True,
        column_config={"内容": st.column_config.TextColumn("内容", width="large")},
    )


def _page_key(run_id: str, page_size: int, newest_first: bool, filters: dict) -> str:
    """A page widget per filter combination, so changing a filter starts again at page 1."""
    signature = repr((run_id, page_size, newest_first, sorted(filters.items())))
    return f"log_page_{hashlib.sha1(signature.encode()).hexdigest()[:12]}"
