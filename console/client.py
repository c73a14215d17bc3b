"""The console's only way to the API: one cached SDK client and helpers that turn failures into Chinese messages."""

import functools
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pydantic
import streamlit as st

from ltm import ApiError, Client
from ltm.settings import Settings
from ltm.vocabulary import field_label

DEFAULT_API_URL = "http://127.0.0.1:8000"
RETRY_SECONDS = 5
UNREACHABLE = "暂时无法连接 API，稍后自动重试"
T = TypeVar("T")
STATUS_LABELS = {
    400: "请求有误",
    401: "需要登录",
    403: "没有权限",
    404: "未找到",
    409: "操作冲突",
    422: "输入有误",
    503: "服务暂不可用",
}
FAILURES = (ApiError, httpx.HTTPError, pydantic.ValidationError)
VALIDATION_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不支持的字段",
    "string_type": "必须是文字",
    "string_too_short": "长度不能小于 {min_length}",
    "string_too_long": "长度不能超过 {max_length}",
    "string_pattern_mismatch": "格式不符合要求",
    "too_long": "元素数量不能超过 {max_length}",
    "too_short": "元素数量不能少于 {min_length}",
    "int_type": "必须是整数",
    "int_parsing": "必须是整数",
    "int_from_float": "必须是整数",
    "float_type": "必须是数字",
    "float_parsing": "必须是数字",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "必须大于或等于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "必须小于或等于 {le}",
    "dict_type": "必须是 JSON 对象",
    "list_type": "必须是列表",
    "enum": "取值必须是 {expected} 之一",
    "literal_error": "取值必须是 {expected} 之一",
}


def settings() -> Settings:
    """The console's LTM_* settings, read again only when those variables change: a read costs about 1.5 ms, and each
    API call of a script run asks for them."""
    return _settings(
        tuple(sorted((name, value) for name, value in os.environ.items() if name.upper().startswith("LTM_")))
    )


@functools.lru_cache(maxsize=4)
def _settings(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings()


def api_url() -> str:
    return settings().api_url or DEFAULT_API_URL


TOKEN_KEY = "ltm_token"


@st.cache_resource(show_spinner=False)
def _client(url: str, token: str | None) -> Client:
    return Client(url, timeout=15, token=token)


def get_client() -> Client:
    """Each browser session calls with its own token (typed in the sidebar), else the console's LTM_TOKEN."""
    return _client(api_url(), st.session_state.get(TOKEN_KEY) or settings().token)


def sign_in() -> None:
    """When the API asks for a token, ask the user for one in the sidebar and hold the page until it works."""
    try:
        me = get_client().whoami()
    except ApiError as exc:
        if exc.status_code != 401:
            raise
        with st.sidebar.form("sign_in"):
            token = st.text_input("访问令牌", type="password", placeholder="ltm_…")
            if st.form_submit_button("登录") and token.strip():
                st.session_state[TOKEN_KEY] = token.strip()
                st.rerun()
        st.info(f"API 已开启认证：请在左侧输入访问令牌（{exc.detail}）。管理员可用 `ltm token create` 创建令牌。")
        st.stop()
    except (httpx.HTTPError, pydantic.ValidationError):
        return
    st.sidebar.caption(f"当前用户：{me.user}（{me.role}）")
    if st.session_state.get(TOKEN_KEY) and st.sidebar.button("退出登录", key="sign_out"):
        st.session_state.pop(TOKEN_KEY)
        st.rerun()


def error_text(exc: Exception) -> str:
    """A Chinese sentence for an SDK failure."""
    if isinstance(exc, ApiError):
        label = STATUS_LABELS.get(exc.status_code, "API 出错" if exc.status_code >= 500 else "请求失败")
        return f"{label}（{exc.status_code}）：{exc.detail}"
    if isinstance(exc, httpx.TimeoutException):
        return "API 响应超时，请稍后重试"
    if isinstance(exc, httpx.TransportError):
        return f"{UNREACHABLE}（{api_url()}）"
    if isinstance(exc, pydantic.ValidationError):
        return "输入有误：" + "；".join(_validation_message(error) for error in exc.errors()[:5])
    raise exc


def _validation_message(error: dict) -> str:
    field = field_label([part for part in error["loc"] if not _UNION_MEMBER.fullmatch(str(part))])
    if error["type"] == "value_error":
        return f"{field}：{error['ctx']['error']}"
    template = VALIDATION_MESSAGES.get(error["type"])
    try:
        message = template.format(**error.get("ctx", {})) if template else "取值无效"
    except (KeyError, IndexError):
        message = "取值无效"
    return f"{field}：{message}"


_UNION_MEMBER = re.compile(r"[a-z][a-z-]*\[.*\]")  # pydantic names the union member it tried, e.g. literal['a']


def _show(exc: Exception) -> None:
    message = error_text(exc)
    if isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.TimeoutException):
        st.warning(message, icon=":material/cloud_off:")
    else:
        st.error(message)


def call(action: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run `action(client, *args, **kwargs)`; on failure show why and return None."""
    try:
        return action(get_client(), *args, **kwargs)
    except FAILURES as exc:
        _show(exc)
        return None


def require(action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like `call`, but the page cannot go on without the answer: stop it, retrying on its own if the API is down."""
    try:
        return action(get_client(), *args, **kwargs)
    except FAILURES as exc:
        _show(exc)
        if isinstance(exc, httpx.TransportError):
            _retry_when_reachable()
        st.stop()


@st.fragment(run_every=RETRY_SECONDS)
def _retry_when_reachable() -> None:
    try:
        get_client().health()
    except FAILURES:
        st.caption(f"每 {RETRY_SECONDS} 秒重新连接一次 …")
        return
    st.rerun()
