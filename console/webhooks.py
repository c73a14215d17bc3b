"""A project's notifications (the 通知 tab): its webhooks, each with its address, format and events, editable by the
owner or an admin; and the latest deliveries with their state, attempts and errors."""

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import ui
from ltm.console.client import call
from ltm.models import (
    DELIVERY_STATES,
    MAX_WEBHOOKS,
    WEBHOOK_EVENT_TITLES,
    WEBHOOK_EVENTS,
    WEBHOOK_FORMATS,
    Project,
    WebhookDelivery,
)

FORMAT_LABELS = {"json": "通用 JSON", "dingtalk": "钉钉", "feishu": "飞书", "wecom": "企业微信"}
STATE_ICONS = dict(zip(DELIVERY_STATES, ("⏳", "✅", "❌")))
DELIVERIES_SHOWN = 50
ABOUT = (
    "项目中的运行完成、失败、取消、被抢占、卡住，指标出现 NaN 或越过项目的指标阈值（每个运行每条规则一次），"
    "以及检查点成为当前发布时，ltm 向这里的地址发送通知，并作为 Prefect 事件（ltm.run.failed 等）发出。"
    "钉钉、飞书、企业微信填写群机器人的 Webhook 地址；标题以【ltm】开头，可用关键词 ltm 做安全设置。"
    "发送失败会自动重试，结果见下方发送记录。只有项目负责人或管理员可以修改。"
)


def event_label(event: str) -> str:
    return f"{WEBHOOK_EVENT_TITLES[event]}（{event}）"


def webhooks_section(project: Project) -> None:
    st.caption(ABOUT)
    config = call(Client.get_webhooks, project.id)
    if config is None:
        return
    version = config.updated_at.isoformat() if config.updated_at else "0"
    hooks = [hook.model_dump() for hook in config.hooks]
    if not hooks:
        st.info("还没有设置 Webhook，项目的事件只作为 Prefect 事件发出。")
    for index in range(len(hooks)):
        hook_form(project, hooks, index, version)
    if len(hooks) < MAX_WEBHOOKS:
        add_form(project, hooks, version)
    if config.updated_by:
        st.caption(f"最近由 {config.updated_by} 于 {ui.fmt_time(config.updated_at)} 修改。")
    deliveries_table(project)


def _fields(prefix: str, hook: dict) -> dict:
    url = st.text_input("地址", value=hook["url"], placeholder="https://…", key=f"{prefix}_url")
    format_ = st.selectbox(
        "格式",
        WEBHOOK_FORMATS,
        index=WEBHOOK_FORMATS.index(hook["format"]),
        format_func=lambda name: FORMAT_LABELS[name],
        key=f"{prefix}_format",
    )
    events = st.multiselect(
        "事件", WEBHOOK_EVENTS, default=hook["events"], format_func=event_label, key=f"{prefix}_events"
    )
    return {"url": url.strip(), "format": format_, "events": events}


def hook_form(project: Project, hooks: list[dict], index: int, version: str) -> None:
    prefix = f"hook_{index}_{version}"
    with st.form(prefix):
        st.markdown(f"**Webhook {index + 1}**")
        edited = _fields(prefix, hooks[index])
        save, remove = st.columns(2)
        saved = save.form_submit_button("保存", type="primary", key=f"{prefix}_save")
        removed = remove.form_submit_button("删除", key=f"{prefix}_remove")
    if saved:
        _replace(project, [*hooks[:index], edited, *hooks[index + 1 :]], f"Webhook {index + 1} 已保存")
    elif removed:
        _replace(project, [*hooks[:index], *hooks[index + 1 :]], f"Webhook {index + 1} 已删除")


def add_form(project: Project, hooks: list[dict], version: str) -> None:
    prefix = f"hook_new_{version}"
    with st.form(prefix):
        st.markdown("**添加 Webhook**")
        added = _fields(prefix, {"url": "", "format": "json", "events": ["run.failed", "run.hung"]})
        submitted = st.form_submit_button("添加", type="primary", key=f"{prefix}_add")
    if submitted:
        if not added["url"]:
            st.error("请填写地址")
            return
        _replace(project, [*hooks, added], "已添加 Webhook")


def _replace(project: Project, hooks: list[dict], done: str) -> None:
    if call(Client.set_webhooks, project.id, hooks) is not None:
        ui.flash("success", done)
        st.rerun()


def _delivery_row(delivery: WebhookDelivery) -> dict:
    return {
        "时间": ui.fmt_time(delivery.created_at),
        "事件": event_label(delivery.event),
        "地址": delivery.url.split("?", 1)[0],
        "格式": FORMAT_LABELS.get(delivery.format, delivery.format),
        "状态": f"{STATE_ICONS.get(delivery.state, '')} {delivery.state}",
        "尝试次数": delivery.attempts,
        "最后错误": delivery.last_error or ui.EMPTY,
        "下次尝试": ui.fmt_time(delivery.next_attempt_at),
        "送达时间": ui.fmt_time(delivery.delivered_at),
    }


def deliveries_table(project: Project) -> None:
    heading, refresh = st.columns([4, 1], vertical_alignment="bottom")
    heading.subheader("发送记录")
    if refresh.button("刷新", key="webhook_deliveries_refresh"):
        st.rerun()
    deliveries = call(Client.webhook_deliveries, project.id, limit=DELIVERIES_SHOWN)
    if deliveries is None:
        return
    if not deliveries:
        st.caption("还没有发送过通知。")
        return
    st.dataframe(
        pd.DataFrame([_delivery_row(d) for d in deliveries]),
        hide_index=True,
        column_config={"最后错误": st.column_config.TextColumn("最后错误", width="large")},
    )
    st.caption(f"最近 {len(deliveries)} 条（最多 {DELIVERIES_SHOWN} 条），最新的在前；地址不显示查询参数中的令牌。")
