"""A project's webhooks (who is told of which events, in which format) and the deliveries made to them."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ltm.api.auth import Caller, require_owner, require_project_member
from ltm.api.deps import Db, ProjectRow, json_body_only
from ltm.api.errors import BODY_ERRORS, responses
from ltm.models import ProjectWebhooks, WebhookDelivery, WebhooksUpdate
from ltm.store import auth as auth_store
from ltm.store import utc_now
from ltm.store import webhooks as webhook_store

router = APIRouter(tags=["通知"], dependencies=[Depends(json_body_only)])
WEBHOOKS = "/projects/{project_id}/webhooks"
EVENTS_TEXT = (
    "事件：run.completed（运行完成）、run.failed（运行失败）、run.cancelled（运行取消）、run.preempted（被抢占）、"
    "run.hung（卡住）、metric.nan（指标出现 NaN 或无穷大）、metric.threshold（指标越过项目的 metric_thresholds，"
    "每个运行每条规则一次）、release（检查点成为当前发布）。"
)
FORMATS_TEXT = (
    "格式：json 发送通知本身（event、project_id、run_id、run_name、status、message、link 等）；dingtalk、feishu、"
    "wecom 按钉钉、飞书、企业微信群机器人的消息格式发送（标题以【ltm】开头，可用关键词 ltm 做安全设置）。"
)


def _view(db, project_id: str) -> dict:
    found = webhook_store.get(db, project_id)
    return {"project_id": project_id, "hooks": [], **(found or {})}


def _without_secrets(url: str) -> str:
    """Robot addresses carry their token in the query: the audit trail keeps the address without it."""
    return url.split("?", 1)[0] + ("?…" if "?" in url else "")


@router.get(
    WEBHOOKS,
    response_model=ProjectWebhooks,
    summary="项目的 Webhook 通知设置",
    description="只有项目负责人、成员和管理员可以查看（地址中常带有机器人的令牌）。",
    responses=responses(404, 422),
)
def get_webhooks(db: Db, caller: Caller, project: ProjectRow):
    require_project_member(db, caller, project, "查看项目的 Webhook 通知设置")
    return _view(db, project["id"])


@router.put(
    WEBHOOKS,
    response_model=ProjectWebhooks,
    summary="设置项目的 Webhook 通知（负责人或管理员）",
    description="以请求中的列表替换项目的全部 Webhook；空列表表示不再通知。"
    + EVENTS_TEXT
    + FORMATS_TEXT
    + f"发送失败会按 LTM_WEBHOOK_RETRY_SECONDS 的间隔重试，结果见 {WEBHOOKS}/deliveries。",
    responses=responses(404, *BODY_ERRORS),
)
def set_webhooks(db: Db, caller: Caller, project: ProjectRow, body: WebhooksUpdate):
    require_owner(caller, project, "设置项目的 Webhook 通知")
    hooks = [hook.model_dump() for hook in body.hooks]
    webhook_store.put(db, project["id"], hooks, caller.user, utc_now())
    described = "；".join(f"{_without_secrets(h['url'])}（{h['format']}：{'、'.join(h['events'])}）" for h in hooks)
    auth_store.record(db, caller.user, "设置通知", project["id"], None, details=described or "不再通知")
    return _view(db, project["id"])


@router.get(
    WEBHOOKS + "/deliveries",
    response_model=list[WebhookDelivery],
    summary="最近的通知发送记录",
    description="每个事件对每个订阅它的 Webhook 一条记录，最新的在前：状态为待发送（含等待重试）、已送达或失败，"
    "attempts 为已尝试的次数，last_error 为最近一次失败的原因。",
    responses=responses(404, 422),
)
def list_deliveries(
    db: Db,
    caller: Caller,
    project: ProjectRow,
    limit: Annotated[int, Query(ge=1, le=500, description="最多返回的条数")] = 50,
):
    require_project_member(db, caller, project, "查看项目的通知发送记录")
    return webhook_store.recent(db, project["id"], limit)
