"""Notifications: what happened to runs, metrics and releases, told to the orchestrator as events (so its automations
can act) and to each project's webhooks.

Nothing here runs on the caller's thread beyond putting a note in an in-memory inbox: a status move, an ingested
batch or a release is turned into events on the `notify-events` thread, and each webhook delivery is a row in the
store that the `notify-send` thread posts, retrying with the waits of LTM_WEBHOOK_RETRY_SECONDS before it ends
失败. Waiting deliveries are picked up again when the API starts.
"""

import logging
import queue
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from ltm.launchers import Launcher
from ltm.models import DELIVERY_STATES, WEBHOOK_EVENT_TITLES, LogLevel, RunStatus
from ltm.settings import Settings
from ltm.store import Database, ingest, utc_now
from ltm.store import projects as project_store
from ltm.store import runs as run_store
from ltm.store import webhooks as webhook_store
from ltm.vocabulary import TERMINAL_RUN_STATUSES

log = logging.getLogger("ltm.api")
_ENDED = frozenset(status.value for status in TERMINAL_RUN_STATUSES)
PENDING, DELIVERED, FAILED = DELIVERY_STATES
TIMEOUT_SECONDS = 5.0
SENDERS = 4  # deliveries posted at once, so one slow receiver holds back no other
ROUND = 20  # deliveries taken from the store per sending round
IDLE_SECONDS = 60.0
ERROR_LENGTH = 500
# The line ltm.reporter writes for a value it cannot store (the API accepts only finite metric values)
NON_FINITE_LINE = re.compile(r"指标 (?P<metric>.+) 在第 (?P<step>\d+) 步的值为 (?P<value>nan|inf|-inf)，无法记录")
_NON_FINITE_SUFFIX = "，无法记录"
_DEFAULT_MESSAGES = {
    "run.completed": "训练已完成",
    "run.failed": "训练失败",
    "run.cancelled": "运行已取消",
    "run.preempted": "GPU 被优先级更高的运行抢占，已保存检查点",
    "run.hung": "训练进程仍在但长时间没有新的步数，判为卡住",
}


def run_event_name(run: dict, previous: RunStatus | None) -> str | None:
    """The event a status move is, if any: only the moves into an end state are told."""
    status = RunStatus(run["status"])
    if previous == status:
        return None
    if status == RunStatus.COMPLETED:
        return "run.completed"
    if status == RunStatus.FAILED:
        return "run.hung" if run.get("hung_at") else "run.failed"
    if status == RunStatus.CANCELLED:
        return "run.preempted" if run.get("preempted_by") else "run.cancelled"
    return None


def run_link(console_url: str, project_id: str, run_id: str | None) -> str:
    base = console_url.rstrip("/")
    if run_id is None:
        return f"{base}/project?{urlencode({'project_id': project_id})}"
    return f"{base}/run?{urlencode({'project_id': project_id, 'run_id': run_id})}"


def _number(value: float) -> str:
    return f"{value:.6g}"


def threshold_message(rule: dict, step: int, value: float) -> str:
    above, below = rule.get("above"), rule.get("below")
    if above is not None and value > above:
        crossed = f"高于上限 {_number(above)}"
    else:
        crossed = f"低于下限 {_number(below)}"
    return f"指标 {rule['metric']} 在第 {step} 步的值为 {_number(value)}，{crossed}"


class Notifications:
    def __init__(self, db: Database, settings: Settings, launcher: Launcher) -> None:
        self.db = db
        self.settings = settings
        self.launcher = launcher
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._told: dict[str, set[tuple]] = {}  # per live run: rules whose first crossing was settled here
        self._thresholds: dict[str, list[dict]] = {}  # per project, as of project update `_thresholds_as_of`
        self._thresholds_as_of = -1
        self._http = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        self._senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="notify-post")
        self._threads = [
            threading.Thread(target=self._handle_inbox, name="notify-events", daemon=True),
            threading.Thread(target=self._send_forever, name="notify-send", daemon=True),
        ]

    # ---- what the rest of the API calls: each only leaves a note

    def start(self) -> "Notifications":
        for thread in self._threads:
            thread.start()
        return self

    def run_moved(self, run: dict, previous: RunStatus | None) -> None:
        """A RunService listener."""
        if run_event_name(run, previous):
            self._inbox.put(("run", run, previous))
        if run["status"] in _ENDED:
            self._inbox.put(("ended", run["id"]))

    def ingested(self, batch: ingest.Batch) -> None:
        """A batch of metrics or logs is in the store."""
        self._inbox.put(("batch", batch))

    def released(self, release: dict) -> None:
        """A ReleaseService listener: `release` became the project's current release."""
        self._inbox.put(("release", release))

    def stop(self, timeout: float = TIMEOUT_SECONDS + 1) -> None:
        """Tell the events still in the inbox, then stop sending (a waiting delivery is sent after the next start)."""
        self._inbox.put(None)
        self._threads[0].join(timeout)
        self._stopping.set()
        self._wake.set()
        self._threads[1].join(timeout)
        self._senders.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    # ---- events

    def _handle_inbox(self) -> None:
        while (note := self._inbox.get()) is not None:
            try:
                for event in self._events_of(note):
                    self._publish(event)
            except Exception:  # one bad note must not end notifications for everyone
                log.exception("处理通知事件失败")

    def _events_of(self, note: tuple) -> list[dict]:
        kind = note[0]
        if kind == "ended":
            self._told.pop(note[1], None)  # no batch of an ended run is stored again
            return []
        if kind == "run":
            _, run, previous = note
            return [self._run_event(run, run_event_name(run, previous))]
        if kind == "release":
            return [self._release_event(note[1])]
        batch: ingest.Batch = note[1]
        if batch.kind == ingest.METRICS:
            return self._threshold_events(batch)
        return self._non_finite_events(batch)

    def _event(self, name: str, project_id: str, run: dict | None, message: str, details: dict) -> dict:
        project = project_store.get_row(self.db, project_id)
        run_id = run["id"] if run else details.get("run_id")
        run_name = run["name"] if run else details.get("run_name")
        project_name = project["name"] if project else project_id
        return {
            "event": name,
            "title": f"【ltm】{WEBHOOK_EVENT_TITLES[name]}：{project_name} / {run_name or '—'}",
            "project_id": project_id,
            "project_name": project_name,
            "run_id": run_id,
            "run_name": run_name,
            "status": run["status"] if run else None,
            "message": message,
            "link": run_link(self.settings.console_url, project_id, run_id),
            "occurred_at": datetime.now(timezone.utc).isoformat(),
            "flow_run_id": run.get("flow_run_id") if run else None,
            "details": details,
        }

    def _run_event(self, run: dict, name: str) -> dict:
        details = {"current_step": run.get("current_step"), "total_steps": run.get("total_steps")}
        if name == "run.preempted":
            details["preempted_by"] = run.get("preempted_by")
        if name == "run.hung" and run.get("hung_at"):
            details["hung_at"] = run["hung_at"].isoformat()
        message = run.get("message") or _DEFAULT_MESSAGES[name]
        return self._event(name, run["project_id"], run, message, details)

    def _release_event(self, release: dict) -> dict:
        run = run_store.get(self.db, release["run_id"]) if release.get("run_id") else None
        details = {
            "release_id": release["id"],
            "number": release["number"],
            "action": release["action"],
            "artifact_id": release["artifact_id"],
            "artifact_name": release["artifact_name"],
            "step": release["step"],
            "notes": release.get("notes"),
            "requested_by": release.get("requested_by"),
            "decided_by": release.get("decided_by"),
            "run_id": release.get("run_id"),
            "run_name": release.get("run_name"),
        }
        at_step = f"（第 {release['step']} 步）" if release.get("step") is not None else ""
        message = f"发布 #{release['number']}：{release['run_name']} 的 {release['artifact_name']}{at_step}成为当前发布"
        if release.get("notes"):
            message += f"；备注：{release['notes']}"
        return self._event("release", release["project_id"], run, message, details)

    def _threshold_events(self, batch: ingest.Batch) -> list[dict]:
        events = []
        told = self._told.setdefault(batch.run_id, set())
        for rule in self._project_thresholds(batch.project_id):
            key = ("threshold", rule["metric"], rule.get("above"), rule.get("below"))
            first = None if key in told else _first_beyond(batch.rows, rule)
            if first is None:
                continue
            told.add(key)
            stored = webhook_store.first_beyond(
                self.db, batch.run_id, rule["metric"], rule.get("above"), rule.get("below")
            )
            if stored is None or (stored["ts"], stored["step"]) != (first["timestamp"], first["step"]):
                continue  # an earlier point crossed first: that batch tells it
            step, value = first["step"], first["value"]
            details = {"metric": rule["metric"], "step": step, "value": value, **_bounds(rule)}
            events.append(self._metric_event("metric.threshold", batch, details, threshold_message(rule, step, value)))
        return events

    def _project_thresholds(self, project_id: str | None) -> list[dict]:
        """Read once per project and project update: metric batches arrive at fleet rates."""
        if project_id is None:
            return []
        if self._thresholds_as_of != project_store.updates():
            self._thresholds_as_of = project_store.updates()
            self._thresholds.clear()
        if project_id not in self._thresholds:
            project = project_store.get_row(self.db, project_id)
            self._thresholds[project_id] = (project or {}).get("metric_thresholds") or []
        return self._thresholds[project_id]

    def _non_finite_events(self, batch: ingest.Batch) -> list[dict]:
        events = []
        told = self._told.setdefault(batch.run_id, set())
        for metric, line in _first_non_finite_lines(batch.rows).items():
            key = ("nan", metric)
            if key in told:
                continue
            told.add(key)
            prefix = f"指标 {metric} 在第 "
            stored = webhook_store.first_line(self.db, batch.run_id, LogLevel.WARNING.value, prefix, _NON_FINITE_SUFFIX)
            if stored != line["timestamp"]:
                continue
            found = NON_FINITE_LINE.fullmatch(line["message"])
            details = {"metric": metric, "step": int(found["step"]), "value": found["value"]}
            events.append(self._metric_event("metric.nan", batch, details, line["message"]))
        return events

    def _metric_event(self, name: str, batch: ingest.Batch, details: dict, message: str) -> dict:
        run = run_store.get(self.db, batch.run_id)
        return self._event(name, run["project_id"], run, message, details)

    # ---- publishing: the orchestrator's event, and a delivery row per webhook that wants it

    def _publish(self, event: dict) -> None:
        self.launcher.emit_event(event)
        config = webhook_store.get(self.db, event["project_id"])
        now = utc_now()
        deliveries = [
            {
                "id": f"dlv_{secrets.token_hex(8)}",
                "project_id": event["project_id"],
                "run_id": event["run_id"],
                "url": hook["url"],
                "format": hook["format"],
                "event": event["event"],
                "payload": body(hook["format"], event),
                "state": PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for hook in (config or {}).get("hooks", [])
            if event["event"] in hook["events"]
        ]
        if deliveries:
            webhook_store.add_deliveries(self.db, deliveries)
            self._wake.set()

    # ---- delivering

    def _send_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                due = webhook_store.due(self.db, utc_now(), ROUND)
            except Exception:
                log.exception("读取待发送的通知失败")
                due = []
            if due:
                list(self._senders.map(self._attempt, due))
                continue
            self._wake.wait(self._idle_seconds())
            self._wake.clear()

    def _idle_seconds(self) -> float:
        try:
            next_due = webhook_store.next_due(self.db)
        except Exception:
            return IDLE_SECONDS
        if next_due is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.0, (next_due - utc_now()).total_seconds()))

    def _attempt(self, delivery: dict) -> None:
        error = self._post(delivery)
        if self._stopping.is_set():
            return  # the store may be closing: this attempt is made again after the next start
        attempts = delivery["attempts"] + 1
        now = utc_now()
        if error is None:
            values = {"state": DELIVERED, "attempts": attempts, "delivered_at": now, "next_attempt_at": None}
            values["last_error"] = None
        elif attempts > len(self.settings.webhook_retry_seconds):
            values = {"state": FAILED, "attempts": attempts, "last_error": error, "next_attempt_at": None}
        else:
            wait = max(0.0, self.settings.webhook_retry_seconds[attempts - 1])
            values = {"attempts": attempts, "last_error": error, "next_attempt_at": now + timedelta(seconds=wait)}
        try:
            webhook_store.record_attempt(self.db, delivery["id"], values)
        except Exception:
            log.exception("记录通知 %s 的发送结果失败", delivery["id"])

    def _post(self, delivery: dict) -> str | None:
        """None when the receiver took it, else why not (in Chinese, at most ERROR_LENGTH characters)."""
        try:
            response = self._http.post(delivery["url"], json=delivery["payload"])
        except httpx.TimeoutException:
            return f"{TIMEOUT_SECONDS:g} 秒内没有响应（超时）"
        except Exception as exc:  # a refused connection, an unknown host, an address httpx cannot use
            return f"无法连接：{type(exc).__name__}：{exc}"[:ERROR_LENGTH]
        return refusal(delivery["format"], response)


# ---- bodies of each format


def _lines(event: dict) -> list[str]:
    lines = [f"项目：{event['project_name']}"]
    if event["run_id"]:
        lines.append(f"运行：{event['run_name']}（{event['run_id']}）")
    if event["status"]:
        lines.append(f"状态：{event['status']}")
    lines.append(f"说明：{event['message']}")
    return lines


def _markdown(event: dict) -> str:
    items = "\n".join(f"- {line}" for line in _lines(event))
    return f"### {event['title']}\n\n{items}\n\n[在 ltm 中查看]({event['link']})"


def body(format_: str, event: dict) -> dict:
    """What a webhook of `format_` is sent for `event`: the event itself as JSON, or the incoming-webhook message of
    DingTalk (markdown), Feishu (post, rich text) or WeCom (markdown) group robots. The title starts with 【ltm】, so
    a DingTalk robot secured by the keyword ltm takes it."""
    if format_ == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": event["title"], "text": _markdown(event)}}
    if format_ == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": _markdown(event)}}
    if format_ == "feishu":
        rows = [[{"tag": "text", "text": line}] for line in _lines(event)]
        rows.append([{"tag": "a", "text": "在 ltm 中查看", "href": event["link"]}])
        return {"msg_type": "post", "content": {"post": {"zh_cn": {"title": event["title"], "content": rows}}}}
    return event


def refusal(format_: str, response: httpx.Response) -> str | None:
    """Why a receiver did not take a notification: a status other than 2xx, or (robots answer 200 either way) the
    error code in a DingTalk or WeCom (errcode) or Feishu (code) answer."""
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}：{response.text[:200]}"[:ERROR_LENGTH]
    if format_ == "json":
        return None
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    code = answer.get("errcode") if format_ in ("dingtalk", "wecom") else answer.get("code", answer.get("StatusCode"))
    if code in (None, 0):
        return None
    text = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
    return f"{format_} 返回错误 {code}：{text}"[:ERROR_LENGTH]


# ---- reading batches


def _bounds(rule: dict) -> dict:
    return {key: rule[key] for key in ("above", "below") if rule.get(key) is not None}


def _first_beyond(rows: pa.Table, rule: dict) -> dict | None:
    """The batch's earliest point (by time, then step) of the rule's metric beyond one of its bounds."""
    values = rows["value"]
    beyond = None
    for bound, compare in (("above", pc.greater), ("below", pc.less)):
        if rule.get(bound) is not None:
            side = compare(values, rule[bound])
            beyond = side if beyond is None else pc.or_(beyond, side)
    if beyond is None:
        return None
    mask = pc.and_(pc.equal(rows["name"], rule["metric"]), beyond)
    found = rows.filter(mask)
    if not found.num_rows:
        return None
    return found.sort_by([("timestamp", "ascending"), ("step", "ascending")]).slice(0, 1).to_pylist()[0]


def _first_non_finite_lines(rows: pa.Table) -> dict[str, dict]:
    """The batch's earliest reporter line per metric saying a value was NaN or infinite."""
    warnings = pc.equal(rows["level"], LogLevel.WARNING.value)
    if not pc.any(warnings).as_py():
        return {}
    candidates = rows.filter(pc.and_(warnings, pc.ends_with(rows["message"], _NON_FINITE_SUFFIX)))
    first: dict[str, dict] = {}
    for line in candidates.sort_by([("timestamp", "ascending")]).to_pylist():
        found = NON_FINITE_LINE.fullmatch(line["message"])
        if found and found["metric"] not in first:
            first[found["metric"]] = line
    return first
