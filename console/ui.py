"""Shared display helpers: statuses, formatting, JSON input and one-shot messages across reruns."""

import json
import re
from datetime import datetime
from typing import Any

import streamlit as st

from ltm.models import ProjectStatus, RunStatus

RUN_STATUS_COLORS = {
    RunStatus.QUEUED: "gray",
    RunStatus.RUNNING: "blue",
    RunStatus.CANCELLING: "orange",
    RunStatus.CANCELLED: "violet",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "red",
}
PROJECT_STATUS_COLORS = {
    ProjectStatus.DRAFT: "gray",
    ProjectStatus.ACTIVE: "blue",
    ProjectStatus.IDLE: "green",
    ProjectStatus.ARCHIVED: "violet",
}
EMPTY = "—"
PRIORITY_HELP = "-100 到 100，越大越先分配 GPU；同一 GPU 型号的队列内先按优先级、再按创建时间排队"


# Streamlit's own English, once for every page: the Ctrl+Enter hints under inputs are hidden (inputs apply on
# blur), and a multiselect's bulk actions read in Chinese.
STYLE = """
<style>
[data-testid="InputInstructions"] { display: none; }
[data-key="__select_all__"] [data-item-hl], [data-key="__select_matches__"] [data-item-hl] { font-size: 0; }
[data-key="__select_all__"] [data-item-hl]::after { content: "全选"; font-size: 0.875rem; }
[data-key="__select_matches__"] [data-item-hl]::after { content: "选中全部匹配项"; font-size: 0.875rem; }
</style>
"""


def apply_style() -> None:
    st.html(STYLE)


class InputError(ValueError):
    """User input that cannot be sent; the message is shown as is."""


def status_badge(status: RunStatus | ProjectStatus) -> None:
    colors = RUN_STATUS_COLORS if isinstance(status, RunStatus) else PROJECT_STATUS_COLORS
    st.badge(status.value, color=colors[status])


def fmt_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else EMPTY


def fmt_size(size: int | None) -> str:
    if size is None:
        return EMPTY
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return EMPTY


def fmt_percent(value: float | None) -> str:
    return EMPTY if value is None else f"{value:.0%}"


def fmt_value(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def fmt_metric(value: float | None) -> str:
    return EMPTY if value is None else f"{value:.4g}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _reject_constant(name: str) -> None:
    raise InputError(name)


def parse_json_object(text: str, label: str) -> dict[str, Any]:
    """Parse a JSON object typed by the user; an empty box means {}."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except InputError:
        raise InputError(f"{label}不能包含 NaN 或 Infinity") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{label}不是合法的 JSON：第 {exc.lineno} 行第 {exc.colno} 列附近格式有误") from None
    if not isinstance(value, dict):
        raise InputError(f'{label}必须是 JSON 对象，例如 {{"learning_rate": 3e-5}}')
    return value


def parse_tags(text: str) -> list[str]:
    return [tag.strip() for tag in re.split(r"[,，、;；\n]", text) if tag.strip()]


def required_text(value: str, label: str) -> str:
    if not value.strip():
        raise InputError(f"请填写{label}")
    return value.strip()


def optional_text(value: str) -> str | None:
    return value.strip() or None


def flash(kind: str, message: str, link: dict | None = None) -> None:
    """Keep a message (and an optional st.page_link's arguments) for the next run of the page."""
    st.session_state.setdefault("_flash", []).append((kind, message, link))


def show_flash() -> None:
    for kind, message, link in st.session_state.pop("_flash", []):
        getattr(st, kind)(message)
        if link:
            st.page_link(**link)


def confirmed(pending_key: str, confirm: str, back: str, key: str, restore: dict | None = None) -> bool:
    """The 确认 / 暂不 pair under a question: 暂不 forgets the pending action (`restore` puts back what the hidden
    form held) and reruns; True on the click that confirms, with the action still pending for the caller."""
    confirm_column, back_column, _ = st.columns([1, 1, 4])
    if back_column.button(back, key=f"{key}_back"):
        st.session_state.pop(pending_key, None)
        st.session_state.update(restore or {})
        st.rerun()
    return confirm_column.button(confirm, key=f"{key}_confirm", type="primary")
