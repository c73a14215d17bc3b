"""A project's runs as one page at a time: filters, sort and page kept in the address, selection to compare or
delete, and a refresh every few seconds while a shown run is still active. The API filters, sorts and pages."""

import re
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import links, ui
from ltm.console.client import FAILURES, call, error_text, get_client, require
from ltm.models import Project, ProjectStatus, RunPage, RunStatus, TagValue

REFRESH_SECONDS = 3
PAGE_SIZES = (20, 50, 100, 200)
SHOWN_METRICS = 6
METRIC_PROBE = 200
COLUMNS = {"created_at": "创建时间", "updated_at": "更新时间", "name": "名称", "progress": "进度", "status": "状态"}
STATS = {"last": "最新值", "min": "最小值", "max": "最大值"}
METRIC = "metric:"
STATUSES = [status.value for status in RunStatus]
TAGS = [tag.value for tag in TagValue]
URL_KEYS = ("status", "q", "tag", "hp", "sort", "size", "page")
HP_HELP = "只列出这些超参数等于给定值的运行，写成 名称=值，多个用逗号分隔，例如 learning_rate=0.001, optimizer=adamw"


@dataclass
class View:
    """What the runs tab shows; its address form is the query parameters in URL_KEYS (defaults left out)."""

    status: list[str] = field(default_factory=list)
    q: str = ""
    tag: str = ""
    hp: str = ""
    sort_by: str = "created_at"
    stat: str = "last"
    descending: bool = True
    size: int = 50
    page: int = 1

    @property
    def sort(self) -> str:
        body = f"{self.sort_by}:{self.stat}" if self.sort_by.startswith(METRIC) else self.sort_by
        return ("-" if self.descending else "") + body

    def to_query(self) -> dict:
        wanted = {
            "status": self.status,
            "q": self.q.strip(),
            "tag": self.tag,
            "hp": self.hp.strip(),
            "sort": self.sort,
            "size": str(self.size),
            "page": str(self.page),
        }
        defaults = View()
        default = {"sort": defaults.sort, "size": str(defaults.size), "page": "1"}
        return {key: value for key, value in wanted.items() if value and value != default.get(key)}


def parse_sort(text: str) -> tuple[str, str, bool] | None:
    descending = text.startswith("-")
    body = text.removeprefix("-")
    if body in COLUMNS:
        return body, "last", descending
    if body.startswith(METRIC) and len(body) > len(METRIC):
        name, _, stat = body.removeprefix(METRIC).rpartition(":")
        if stat in STATS and name:
            return METRIC + name, stat, descending
        return body, "last", descending
    return None


def from_query(params: dict[str, list[str]]) -> tuple[View, list[str]]:
    """The view an address asks for, and a Chinese note for each value it could not use (that part is the default)."""
    view, notes = View(), []

    def bad(key: str, value: str, using: str) -> None:
        notes.append(f"地址中的 {key}={value} 无效，已改用{using}")

    statuses = params.get("status", [])
    view.status = [s for s in statuses if s in STATUSES]
    for unknown in [s for s in statuses if s not in STATUSES]:
        bad("status", unknown, "其余的状态条件")
    view.q = (params.get("q") or [""])[-1][:200]
    if hp := (params.get("hp") or [""])[-1]:
        try:
            parse_hyperparameters(hp)
            view.hp = hp
        except ui.InputError:
            bad("hp", hp, "不按超参数筛选")
    if tag := (params.get("tag") or [None])[-1]:
        if tag in TAGS:
            view.tag = tag
        else:
            bad("tag", tag, "全部标签")
    if sort := (params.get("sort") or [None])[-1]:
        parsed = parse_sort(sort)
        if parsed:
            view.sort_by, view.stat, view.descending = parsed
        else:
            bad("sort", sort, "默认排序（创建时间从新到旧）")
    if size := (params.get("size") or [None])[-1]:
        if size.isdigit() and int(size) in PAGE_SIZES:
            view.size = int(size)
        else:
            bad("size", size, f"每页 {view.size} 个")
    if page := (params.get("page") or [None])[-1]:
        if page.isdigit() and int(page) >= 1:
            view.page = int(page)
        else:
            bad("page", page, "第 1 页")
    return view, notes


def parse_hyperparameters(text: str) -> dict[str, str]:
    """`a=1, b=x` as {"a": "1", "b": "x"}; raises ui.InputError naming what is wrong."""
    filters = {}
    for part in re.split(r"[,，]", text):
        if not part.strip():
            continue
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise ui.InputError(f"超参数条件“{part.strip()}”应写成 名称=值，例如 learning_rate=0.001")
        filters[key.strip()] = value.strip()
    return filters


# Widget keys: the session's copy of the view, seeded from the address when a project's page first opens.
KEYS = {
    "status": "runs_status",
    "q": "runs_q",
    "tag": "runs_tag",
    "hp": "runs_hp",
    "sort_by": "runs_sort_by",
    "stat": "runs_stat",
    "descending": "runs_descending",
    "size": "runs_size",
    "page": "runs_page",
}


def _seed(project_id: str) -> None:
    """The widgets' values: from the address when the page opens on a project, else the session's last view (a
    widget's own value is dropped while another page is shown)."""
    if st.session_state.get("runs_for") != project_id:
        view, notes = from_query({key: st.query_params.get_all(key) for key in URL_KEYS})
        st.session_state["runs_view"] = view
        st.session_state["runs_for"] = project_id
        st.session_state["runs_notes"] = notes
        for stale in ("runs_ticking", "runs_pick", "runs_deleting", *KEYS.values()):
            st.session_state.pop(stale, None)
    for name, key in KEYS.items():
        if key not in st.session_state:
            st.session_state[key] = getattr(st.session_state["runs_view"], name)


def address_notes(project_id: str) -> list[str]:
    """What the address asked for that the runs list could not use (said once, above the tabs)."""
    _seed(project_id)
    return st.session_state.pop("runs_notes", [])


def _first_page() -> None:
    st.session_state[KEYS["page"]] = 1


def _current() -> View:
    st.session_state["runs_view"] = View(**{name: st.session_state[key] for name, key in KEYS.items()})
    return st.session_state["runs_view"]


def _write_address(view: View) -> None:
    wanted = view.to_query()
    for key in URL_KEYS:
        if key in wanted:
            if st.query_params.get_all(key) != ([wanted[key]] if isinstance(wanted[key], str) else wanted[key]):
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]


def filters(project_id: str) -> None:
    """The filter and sort controls; each change goes back to page 1."""
    metric_names = _known_metrics(project_id)
    sort_by = st.session_state[KEYS["sort_by"]]
    if sort_by.startswith(METRIC) and sort_by.removeprefix(METRIC) not in metric_names:
        metric_names.append(sort_by.removeprefix(METRIC))
    first, second, third, fourth = st.columns([3, 2, 1.2, 3])
    first.multiselect("状态", STATUSES, key=KEYS["status"], on_change=_first_page, placeholder="全部状态")
    second.text_input("名称包含", key=KEYS["q"], on_change=_first_page, max_chars=200, placeholder="按名称搜索")
    third.selectbox(
        "检查点标签",
        ["", *TAGS],
        key=KEYS["tag"],
        on_change=_first_page,
        format_func=lambda tag: tag or "不限",
        help="只列出有检查点带此标签的运行",
    )
    fourth.text_input(
        "超参数（名称=值）", key=KEYS["hp"], on_change=_first_page, help=HP_HELP, placeholder="例如 learning_rate=0.001"
    )
    by, stat, order, size = st.columns([3, 1.5, 1.5, 1])
    options = [*COLUMNS, *(METRIC + name for name in metric_names)]
    by.selectbox(
        "排序依据",
        options,
        key=KEYS["sort_by"],
        on_change=_first_page,
        format_func=lambda key: f"指标 {key.removeprefix(METRIC)}" if key.startswith(METRIC) else COLUMNS[key],
        help="可按创建时间、名称、进度、状态或任一指标排序；没有该指标的运行排在最后",
    )
    stat.selectbox(
        "指标取值",
        list(STATS),
        key=KEYS["stat"],
        on_change=_first_page,
        format_func=STATS.get,
        disabled=not st.session_state[KEYS["sort_by"]].startswith(METRIC),
    )
    order.selectbox(
        "顺序",
        [True, False],
        key=KEYS["descending"],
        on_change=_first_page,
        format_func=lambda d: "降序" if d else "升序",
    )
    size.selectbox("每页", PAGE_SIZES, key=KEYS["size"], on_change=_first_page)


def _known_metrics(project_id: str) -> list[str]:
    """Metric names to sort by: those of the project's newest runs."""
    recent = call(Client.search_runs, project_id, sort="-created_at", limit=METRIC_PROBE)
    return sorted({name for run in recent.items for name in run.metrics}) if recent else []


def _query(view: View) -> dict | None:
    try:
        hyperparameters = parse_hyperparameters(view.hp)
    except ui.InputError as exc:
        st.error(str(exc))
        return None
    return {
        "status": view.status or None,
        "q": view.q.strip() or None,
        "tag": view.tag or None,
        "hyperparameters": hyperparameters or None,
        "sort": view.sort,
        "limit": view.size,
        "offset": (view.page - 1) * view.size,
    }


def runs_tab(project: Project) -> None:
    """The filters above one page of runs. The page is sent first and the filters after it, into their place above:
    the browser starts loading the grid's code sooner, and the look-up of metric names to sort by waits until the
    runs are on their way."""
    _seed(project.id)
    controls = st.container()
    ticking = st.session_state.get("runs_ticking", project.status == ProjectStatus.ACTIVE)
    st.fragment(run_every=REFRESH_SECONDS if ticking else None)(_runs)(project, ticking)
    with controls:
        filters(project.id)


def _runs(project: Project, ticking: bool) -> None:
    """Runs alone every few seconds while `ticking`, and on its own widgets (page, selection, deletion)."""
    if st.session_state.pop("runs_changed", False):
        st.rerun()  # after a deletion: the header's run count is outside this fragment
    for kind, message in st.session_state.pop("runs_messages", []):
        getattr(st, kind)(message)
    view = _current()
    query = _query(view)
    if query is None:
        return
    _write_address(view)
    page = require(Client.search_runs, project.id, **query)
    active = any(run.status.is_active for run in page.items)
    if active != ticking:  # start or stop the refresh: only a full run sets the fragment's timer
        st.session_state["runs_ticking"] = active
        st.rerun()
    if not _page_in_range(view, page):
        return
    if page.total == 0:
        filtered = view.status or view.q.strip() or view.tag or view.hp.strip()
        st.info("没有符合筛选条件的运行。" if filtered else "还没有运行，在“发起运行”中启动第一个运行。")
        return
    table(project, page, view)
    pager(view, page)
    if ticking:
        st.caption(f"有运行仍在进行，列表每 {REFRESH_SECONDS} 秒自动刷新")
    selection(project, page)


def _page_in_range(view: View, page: RunPage) -> bool:
    pages = max(1, -(-page.total // view.size))
    if view.page <= pages:
        return True
    st.session_state.setdefault("runs_notes", []).append(
        f"地址中的页码 {view.page} 超出范围（共 {pages} 页），已显示第 1 页"
    )
    st.session_state[KEYS["page"]] = 1
    st.rerun()
    return False


def table(project: Project, page: RunPage, view: View) -> None:
    metric_names = sorted({name for run in page.items for name in run.metrics})
    if view.sort_by.startswith(METRIC):
        sorted_metric = view.sort_by.removeprefix(METRIC)
        metric_names = [sorted_metric, *(name for name in metric_names if name != sorted_metric)]
    metric_names = metric_names[:SHOWN_METRICS]
    names = {run.id: run.name for run in page.items}
    frame = pd.DataFrame(
        [
            {
                "名称": links.named_run_url(project.id, run.id, run.name),
                "状态": run.status.value,
                "进度": run.progress,
                **{name: run.metrics.get(name) for name in metric_names},
                "GPU 利用率": run.gpu_utilization,
                "优先级": run.priority,
                "GPU 排队": f"第 {run.queue_position} 位" if run.queue_position else None,
                "创建时间": ui.fmt_time(run.created_at),
                "开始时间": ui.fmt_time(run.started_at),
                "更新时间": ui.fmt_time(run.updated_at),
                "恢复自": names.get(run.parent_run_id, run.parent_run_id),
            }
            for run in page.items
        ],
        columns=[
            "名称",
            "状态",
            "进度",
            *metric_names,
            "GPU 利用率",
            "优先级",
            "GPU 排队",
            "创建时间",
            "开始时间",
            "更新时间",
            "恢复自",
        ],
    )
    st.dataframe(
        frame,
        hide_index=True,
        placeholder=ui.EMPTY,
        column_config={
            "名称": st.column_config.LinkColumn(
                "名称", display_text=links.NAME_IN_URL, pinned=True, help="点击打开运行详情"
            ),
            "进度": st.column_config.ProgressColumn("进度", min_value=0.0, max_value=1.0, format="percent"),
            "GPU 利用率": st.column_config.ProgressColumn("GPU 利用率", min_value=0.0, max_value=1.0, format="percent"),
            **{name: st.column_config.NumberColumn(name, format="%.4g") for name in metric_names},
        },
        key="runs_table",
    )


def pager(view: View, page: RunPage) -> None:
    pages = max(1, -(-page.total // view.size))
    first = (view.page - 1) * view.size + 1
    number, summary = st.columns([1, 5], vertical_alignment="bottom")
    number.number_input("页码", min_value=1, max_value=pages, step=1, key=KEYS["page"])
    summary.caption(
        f"共 {page.total} 个运行 · 第 {view.page} / {pages} 页 · 本页第 {first}–{first + len(page.items) - 1} 个"
    )


def selection(project: Project, page: RunPage) -> None:
    names = {run.id: f"{run.name}（{run.status.value}）" for run in page.items}
    picked_key = "runs_pick"
    st.session_state[picked_key] = [run_id for run_id in st.session_state.get(picked_key, []) if run_id in names]
    picked = st.multiselect(
        "选择本页的运行（对比或删除）", list(names), format_func=names.get, key=picked_key, placeholder="选择运行"
    )
    compare, delete = st.columns([2, 1])
    if len(picked) >= 2:
        with compare:
            links.page_link(links.to_compare(project.id, picked, f"对比所选的 {len(picked)} 个运行"))
    if picked and delete.button(f"删除所选的 {len(picked)} 个运行", icon=":material/delete:", key="runs_delete"):
        st.session_state["runs_deleting"] = list(picked)
    if st.session_state.get("runs_deleting"):
        confirm_deletion(project.id, st.session_state["runs_deleting"])


def confirm_deletion(project_id: str, run_ids: list[str]) -> None:
    """What deleting the runs would remove (a dry run of each), then delete on confirmation."""
    previews, refusals = [], []
    for run_id in run_ids:
        try:
            report = get_client().delete_run(project_id, run_id, dry_run=True)
        except FAILURES as exc:
            refusals.append(f"{run_id}：{error_text(exc)}")
            continue
        active = [run for run in report.runs if run.status.is_active]
        if active:
            refusals.append(
                f"{run_id}：运行 {active[0].name} 仍在进行（{active[0].status.value}），请先取消或等待其结束"
            )
        else:
            previews.append(report)
    with st.container(border=True):
        st.warning(f"确认删除以下 {len(previews)} 个运行？运行的日志、指标和工件记录会一并删除，无法恢复。")
        for refusal in refusals:
            st.error(f"不能删除 {refusal}")
        if previews:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "名称": run.name,
                            "状态": run.status.value,
                            "工件": report.artifact_count,
                            "工件大小": ui.fmt_size(report.artifact_bytes),
                            "日志行": report.log_lines,
                            "指标点": report.metric_points,
                        }
                        for report in previews
                        for run in report.runs
                    ]
                ),
                hide_index=True,
                key="runs_delete_preview",
            )
        yes, no = st.columns([1, 5])
        ids = [run.id for report in previews for run in report.runs]
        yes.button(
            "确认删除",
            type="primary",
            disabled=not ids,
            key="runs_delete_confirm",
            on_click=_delete,
            args=(project_id, ids),
        )
        no.button("取消", key="runs_delete_cancel", on_click=_cancel_deletion)


def _cancel_deletion() -> None:
    st.session_state.pop("runs_deleting", None)


def _delete(project_id: str, run_ids: list[str]) -> None:
    deleted, failures = [], []
    for run_id in run_ids:
        try:
            deleted.extend(run.name for run in get_client().delete_run(project_id, run_id, dry_run=False).runs)
        except FAILURES as exc:
            failures.append(f"{run_id}：{error_text(exc)}")
    messages = [("success", f"已删除 {len(deleted)} 个运行：{'、'.join(deleted)}")] if deleted else []
    st.session_state["runs_messages"] = messages + [("error", f"删除失败 {failure}") for failure in failures]
    st.session_state.pop("runs_deleting", None)
    st.session_state["runs_pick"] = []
    st.session_state["runs_changed"] = True
