"""Notifications through a real API process and a real webhook receiver on loopback: each event (run completed,
failed, cancelled, preempted, hung; a metric crossing a threshold or turning NaN; a release) reaches the webhooks that
asked for it once, in JSON and in the robots' formats; failed deliveries are retried, survive a crash of the API and
end 失败 with their error; bad settings are Chinese 422s; the console edits webhooks and shows deliveries; and with
`ltm up` each event is also a Prefect event that ltm's ready automations react to."""

import json
import signal
import threading
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter, EventResourceFilter

from ltm import ApiError, Client
from ltm.flows.automations import READY, automation_name
from ltm.gpus import parse_declared
from ltm.models import MetricBatch, MetricPoint, RunStatus
from ltm.reporter import RunReporter
from tests.conftest import ApiProcess, free_port, wait_until
from tests.console_helpers import open_console
from tests.helpers import cli_token, prefect_client, stored_checkpoint, unique

CONSOLE = "http://console.example:8501"
OK = (200, {"errcode": 0, "errmsg": "ok"})  # what DingTalk and WeCom robots answer; JSON receivers ignore the body


class Receiver:
    """A webhook receiver on loopback: records every POST by path and answers 200, or what a path was told to answer
    first."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict]] = defaultdict(list)
        self.taken: dict[str, list[dict]] = defaultdict(list)
        self.scripts: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.posts[self.path].append(body)
                    script = receiver.scripts[self.path]
                    status, answer = script.pop(0) if script else OK
                    if status == 200 and not answer.get("errcode"):
                        receiver.taken[self.path].append(body)
                encoded = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answer_first(self, path: str, *answers: tuple[int, dict]) -> None:
        with self.lock:
            self.scripts[path].extend(answers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An API of this module's own: fast retries (0.2 s, 0.2 s: three attempts), a local artifact root, a console
    address for the links, and a reconciler that looks every second (hang detection, GPU admission)."""
    home = tmp_path_factory.mktemp("notifications") / "home"
    root = home.parent / "artifacts"
    api = ApiProcess(
        home,
        LTM_ARTIFACT_ROOT=str(root),
        LTM_WEBHOOK_RETRY_SECONDS="[0.2, 0.2]",
        LTM_CONSOLE_URL=CONSOLE,
        LTM_RECONCILE_SECONDS="1",
    ).start()
    with Client(api.url) as client:
        yield client, root
    api.stop()


@pytest.fixture
def client(server):
    return server[0]


def paths(name: str) -> dict[str, str]:
    """A receiver path per format, unique to the test."""
    tag = uuid.uuid4().hex[:8]
    return {fmt: f"/{tag}/{name}/{fmt}" for fmt in ("json", "dingtalk", "feishu", "wecom")}


def project_with_hooks(client: Client, receiver: Receiver, hooks: list[tuple[str, str, list[str]]], **fields):
    """A project whose webhooks are (receiver path, format, events)."""
    project = client.create_project(unique("通知"), owner="测试", **fields)
    client.set_webhooks(
        project.id, [{"url": receiver.url(path), "format": fmt, "events": events} for path, fmt, events in hooks]
    )
    return project


def settled(client: Client, project_id: str, count: int) -> list:
    """The project's deliveries once there are `count` and none is waiting any more."""

    def done():
        found = client.webhook_deliveries(project_id, limit=500)
        return len(found) >= count and all(d.state != "待发送" for d in found) and found

    return wait_until(done, timeout=30, message=f"{count} deliveries of {project_id} to settle")


def run_link(project_id: str, run_id: str) -> str:
    return f"{CONSOLE}/run?{urlencode({'project_id': project_id, 'run_id': run_id})}"


def running(client: Client, project_id: str, name: str, **fields):
    run = client.create_run(project_id, "qwen-7b", "语料", name=name, **fields)
    client.report(project_id, run.id, status="运行中")
    return run


def by_run(bodies: list[dict]) -> dict[str, dict]:
    found = {}
    for body in bodies:
        assert body["run_id"] not in found, f"told twice: {body}"
        found[body["run_id"]] = body
    return found


# ---- events


def test_each_run_end_reaches_every_webhook_once_in_its_format(client, receiver):
    to = paths("ends")
    ends = ["run.completed", "run.failed", "run.cancelled"]
    project = project_with_hooks(
        client,
        receiver,
        [(to["json"], "json", ends), (to["dingtalk"], "dingtalk", ends), (to["feishu"], "feishu", ["run.completed"])]
        + [(to["wecom"], "wecom", ["run.completed"])],
    )
    done = running(client, project.id, "完成的运行")
    client.report(project.id, done.id, status="已完成")
    failed = running(client, project.id, "失败的运行")
    client.report(project.id, failed.id, status="失败", message="读取第 4 批数据失败：样本文件损坏")
    cancelled = client.create_run(project.id, "qwen-7b", "语料", name="取消的运行")
    client.cancel_run(project.id, cancelled.id)

    deliveries = settled(client, project.id, 8)
    assert len(deliveries) == 8 and {(d.state, d.attempts) for d in deliveries} == {("已送达", 1)}
    told = by_run(receiver.taken[to["json"]])
    assert set(told) == {done.id, failed.id, cancelled.id}
    for run, event, status in (
        (done, "run.completed", "已完成"),
        (failed, "run.failed", "失败"),
        (cancelled, "run.cancelled", "已取消"),
    ):
        body = told[run.id]
        assert (body["event"], body["status"], body["run_name"]) == (event, status, run.name)
        assert (body["project_id"], body["project_name"]) == (project.id, project.name)
        assert body["link"] == run_link(project.id, run.id)
        assert body["title"].startswith("【ltm】") and run.name in body["title"]
    assert told[failed.id]["message"] == "读取第 4 批数据失败：样本文件损坏"

    robots = receiver.taken[to["dingtalk"]]
    assert len(robots) == 3 and {b["msgtype"] for b in robots} == {"markdown"}
    failure = next(b["markdown"] for b in robots if "失败的运行" in b["markdown"]["title"])
    assert failure["title"].startswith("【ltm】运行失败")
    assert "样本文件损坏" in failure["text"] and f"]({run_link(project.id, failed.id)})" in failure["text"]
    [feishu] = receiver.taken[to["feishu"]]
    post = feishu["content"]["post"]["zh_cn"]
    assert feishu["msg_type"] == "post" and post["title"].startswith("【ltm】运行完成")
    assert {"tag": "a", "text": "在 ltm 中查看", "href": run_link(project.id, done.id)} in post["content"][-1]
    [wecom] = receiver.taken[to["wecom"]]
    assert wecom["msgtype"] == "markdown" and "完成的运行" in wecom["markdown"]["content"]
    assert all(len(receiver.posts[path]) == len(receiver.taken[path]) for path in to.values()), "nothing sent twice"


def test_a_metric_crossing_a_threshold_is_told_once_per_run_and_rule(client, receiver):
    to = paths("threshold")
    rules = [{"metric": "loss", "above": 5.0}, {"metric": "accuracy", "below": 0.2}]
    project = project_with_hooks(
        client, receiver, [(to["json"], "json", ["metric.threshold", "run.completed"])], metric_thresholds=rules
    )
    first, second = running(client, project.id, "发散"), running(client, project.id, "也发散")

    def send(run, batch_id, points):
        batch = MetricBatch(
            batch_id=batch_id,
            points=[MetricPoint(name=n, step=s, value=v, timestamp=f"2026-01-01T00:00:{s:02d}Z") for n, s, v in points],
        )
        client.send_metrics(project.id, run.id, batch)

    send(first, "a", [("loss", 1, 3.0), ("accuracy", 1, 0.5), ("loss", 2, 4.0)])
    send(first, "b", [("loss", 3, 6.5), ("loss", 4, 9.0), ("accuracy", 4, 0.1)])
    send(first, "c", [("loss", 5, 12.0), ("accuracy", 5, 0.05)])
    send(second, "a", [("loss", 7, 5.5)])

    settled(client, project.id, 3)
    told = list(receiver.taken[to["json"]])
    crossings = sorted((b["run_id"], b["details"]["metric"], b["details"]["step"], b["details"]["value"]) for b in told)
    assert crossings == sorted(
        [(first.id, "loss", 3, 6.5), (first.id, "accuracy", 4, 0.1), (second.id, "loss", 7, 5.5)]
    )
    loss = next(b for b in told if b["run_id"] == first.id and b["details"]["metric"] == "loss")
    assert loss["message"] == "指标 loss 在第 3 步的值为 6.5，高于上限 5" and loss["details"]["above"] == 5.0
    assert loss["link"] == run_link(project.id, first.id) and loss["status"] == "运行中"
    send(first, "d", [("loss", 6, 20.0)])
    client.report(project.id, first.id, status="已完成")  # told after batch d was judged: events keep their order
    later = [d.event for d in settled(client, project.id, 4)]
    assert sorted(later) == ["metric.threshold"] * 3 + ["run.completed"], "a crossing is told once per run and rule"


def test_thresholds_changed_during_a_run_judge_its_next_batch(client, receiver):
    """The API keeps each project's thresholds in memory (metric batches arrive at fleet rates): a change must
    reach the very next batch."""
    to = paths("changed")
    project = project_with_hooks(
        client,
        receiver,
        [(to["json"], "json", ["metric.threshold"])],
        metric_thresholds=[{"metric": "loss", "above": 5.0}],
    )
    run = running(client, project.id, "改阈值")
    at = "2026-01-01T00:00:0{}Z"
    client.send_metrics(
        project.id,
        run.id,
        MetricBatch(batch_id="a", points=[MetricPoint(name="loss", step=1, value=1.0, timestamp=at.format(1))]),
    )
    client.update_project(project.id, metric_thresholds=[{"metric": "loss", "above": 2.0}])
    client.send_metrics(
        project.id,
        run.id,
        MetricBatch(batch_id="b", points=[MetricPoint(name="loss", step=2, value=3.5, timestamp=at.format(2))]),
    )

    settled(client, project.id, 1)
    [body] = receiver.taken[to["json"]]
    assert (body["details"]["step"], body["details"]["value"], body["details"]["above"]) == (2, 3.5, 2.0)


def test_a_nan_the_sdk_reporter_could_not_store_is_told_once(client, receiver):
    """The API stores finite values only; ltm.reporter turns a NaN into a WARNING line, which is the metric.nan."""
    to = paths("nan")
    project = project_with_hooks(client, receiver, [(to["json"], "json", ["metric.nan", "run.completed"])])
    run = running(client, project.id, "损失变成 NaN")
    reporter = RunReporter(client, project.id, run.id, interval=0.05)
    reporter.metrics(11, {"loss": 2.5, "accuracy": 0.4})
    reporter.metrics(12, {"loss": float("nan"), "accuracy": 0.41})
    reporter.flush()
    reporter.metrics(13, {"loss": float("nan")})
    reporter.close()
    client.report(project.id, run.id, status="已完成")  # told after both NaN lines were judged

    assert sorted(d.event for d in settled(client, project.id, 2)) == ["metric.nan", "run.completed"]
    [body] = [b for b in receiver.taken[to["json"]] if b["event"] == "metric.nan"]
    assert body["run_id"] == run.id
    assert body["details"] == {"metric": "loss", "step": 12, "value": "nan"}
    assert body["message"] == "指标 loss 在第 12 步的值为 nan，无法记录"


def test_a_checkpoint_becoming_the_current_release_is_told(server, receiver):
    client, root = server
    to = paths("release")
    project = project_with_hooks(
        client, receiver, [(to["dingtalk"], "dingtalk", ["release"]), (to["json"], "json", ["release"])]
    )
    run = running(client, project.id, "基线")
    files = {"state.json": b'{"step": 200}', "weights.bin": b"\x01" * 4096}
    checkpoint = stored_checkpoint(client, root, project.id, run.id, 200, files)
    client.report(project.id, run.id, status="已完成")
    client.tag_artifact(project.id, run.id, checkpoint.id, "发布", notes="BLEU 33.1")

    settled(client, project.id, 2)
    [body] = receiver.taken[to["json"]]
    assert (body["event"], body["run_id"], body["run_name"]) == ("release", run.id, "基线")
    assert body["details"]["number"] == 1 and body["details"]["artifact_id"] == checkpoint.id
    assert body["message"] == "发布 #1：基线 的 第 200 步检查点（第 200 步）成为当前发布；备注：BLEU 33.1"
    assert body["link"] == run_link(project.id, run.id)
    [robot] = receiver.taken[to["dingtalk"]]
    assert robot["markdown"]["title"].startswith("【ltm】新的发布") and "BLEU 33.1" in robot["markdown"]["text"]


def test_a_preempted_run_is_told_as_preempted_not_cancelled(client, receiver):
    """Real preemption in the API (declared GPUs, a project that allows it); this test plays the flows' part."""
    to = paths("preempted")
    project = project_with_hooks(
        client, receiver, [(to["json"], "json", ["run.preempted", "run.cancelled"])], preemption=True
    )
    host = unique("gpu-host")
    client.register_host(host, parse_declared("T4:1", host))
    gpus = {"gpu_type": "T4", "gpu_count": 1}
    low = running(client, project.id, "低优先级", resources=gpus)
    high = client.create_run(project.id, "qwen-7b", "语料", name="高优先级", resources=gpus, priority=10)
    wait_until(
        lambda: client.get_run(project.id, low.id).status == RunStatus.CANCELLING, timeout=30, message="preemption"
    )
    client.report(project.id, low.id, status="已取消")  # the flow saved its checkpoint and stopped

    settled(client, project.id, 1)
    [body] = receiver.taken[to["json"]]
    assert (body["event"], body["run_id"], body["status"]) == ("run.preempted", low.id, "已取消")
    assert body["details"]["preempted_by"] == high.id and body["message"].startswith("被抢占：运行 高优先级")


def test_a_hung_run_is_told_as_hung_not_failed(client, receiver):
    """Real hang detection in the API (hang_minutes 0.02: 1.2 s without a new step); this test plays the flow,
    which finds its run hung and ends it 失败 after saving a checkpoint."""
    to = paths("hung")
    project = project_with_hooks(
        client, receiver, [(to["json"], "json", ["run.hung", "run.failed"])], hang_minutes=0.02
    )
    run = running(client, project.id, "卡住的运行")
    client.report(project.id, run.id, current_step=3, total_steps=100)
    hung = wait_until(
        lambda: (r := client.get_run(project.id, run.id)).hung_at and r, timeout=30, message="hang detection"
    )
    client.report(project.id, run.id, status="失败", message=f"{hung.message}，已保存检查点")

    settled(client, project.id, 1)
    [body] = receiver.taken[to["json"]]
    assert (body["event"], body["run_id"], body["status"]) == ("run.hung", run.id, "失败")
    assert body["message"].startswith("卡住：") and body["details"]["hung_at"]


# ---- delivery


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(client, receiver):
    to = paths("flaky")
    receiver.answer_first(to["json"], (500, {"error": "busy"}), (503, {"error": "busy"}))
    project = project_with_hooks(client, receiver, [(to["json"], "json", ["run.completed"])])
    run = running(client, project.id, "重试")
    client.report(project.id, run.id, status="已完成")

    [delivery] = settled(client, project.id, 1)
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("已送达", 3, None)
    assert delivery.delivered_at is not None and delivery.payload["run_id"] == run.id
    assert len(receiver.posts[to["json"]]) == 3 and len(receiver.taken[to["json"]]) == 1


def test_a_dead_address_and_a_refusing_robot_end_failed_with_their_errors(client, receiver):
    to = paths("refused")
    receiver.answer_first(to["dingtalk"], *[(200, {"errcode": 310000, "errmsg": "keywords not in content"})] * 3)
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    project = client.create_project(unique("通知"), owner="测试")
    hooks = [{"url": dead, "events": ["run.failed"]}]
    hooks.append({"url": receiver.url(to["dingtalk"]), "format": "dingtalk", "events": ["run.failed"]})
    client.set_webhooks(project.id, hooks)
    run = running(client, project.id, "没人接收")
    client.report(project.id, run.id, status="失败")

    deliveries = {d.url: d for d in settled(client, project.id, 2)}
    assert {(d.state, d.attempts, d.next_attempt_at) for d in deliveries.values()} == {("失败", 3, None)}
    assert deliveries[dead].last_error.startswith("无法连接：ConnectError")
    assert deliveries[receiver.url(to["dingtalk"])].last_error == "dingtalk 返回错误 310000：keywords not in content"


def test_a_delivery_waiting_for_its_retry_is_sent_by_the_next_api_after_a_crash(tmp_path, receiver, start_api):
    to = paths("restart")
    receiver.answer_first(to["json"], (502, {"error": "down"}))
    home = tmp_path / "home"
    api = start_api(home, LTM_WEBHOOK_RETRY_SECONDS="[1]")
    with Client(api.url) as client:
        project = project_with_hooks(client, receiver, [(to["json"], "json", ["run.completed"])])
        run = running(client, project.id, "跨重启")
        client.report(project.id, run.id, status="已完成")
        wait_until(
            lambda: [d.attempts for d in client.webhook_deliveries(project.id)] == [1], message="the first attempt"
        )
    api.stop(signal.SIGKILL)
    assert len(receiver.posts[to["json"]]) == 1 and not receiver.taken[to["json"]]

    again = start_api(home, LTM_WEBHOOK_RETRY_SECONDS="[1]")
    with Client(again.url) as client:
        [delivery] = settled(client, project.id, 1)
    assert (delivery.state, delivery.attempts) == ("已送达", 2)
    assert [body["run_id"] for body in receiver.taken[to["json"]]] == [run.id]


# ---- settings


def test_bad_webhook_settings_are_chinese_422s_naming_the_field_and_change_nothing(client, receiver):
    project = client.create_project(unique("通知"), owner="测试")
    good = {"url": receiver.url("/kept"), "format": "json", "events": ["run.failed"]}
    client.set_webhooks(project.id, [good])
    put = f"/projects/{project.id}/webhooks"
    cases = [
        ({"url": "ftp://example.com/hook", "events": ["run.failed"]}, "hooks.0.url", "http:// 或 https://"),
        ({"url": "https://exa mple.com/hook", "events": ["run.failed"]}, "hooks.0.url", "不含空白字符"),
        (
            {"url": "https://example.com", "format": "slack", "events": ["run.failed"]},
            "hooks.0.format",
            "json、dingtalk",
        ),
        ({"url": "https://example.com", "events": ["run.exploded"]}, "hooks.0.events.0", "run.completed、run.failed"),
        ({"url": "https://example.com", "events": []}, "hooks.0.events", "元素数量不能少于 1"),
        ({"events": ["run.failed"]}, "hooks.0.url", "缺少必填字段"),
        ({"url": "https://example.com", "events": ["run.failed"], "secret": "x"}, "hooks.0.secret", "不支持的字段"),
    ]
    for hook, field, words in cases:
        answer = client.http.put(put, json={"hooks": [hook]})
        assert answer.status_code == 422, (hook, answer.text)
        error = answer.json()["errors"][0]
        assert error["field"] == field and words in error["message"], (hook, answer.text)
        assert answer.json()["detail"].startswith("请求参数有误 - ")
    too_many = client.http.put(put, json={"hooks": [good] * 21})
    assert too_many.status_code == 422 and "元素数量不能超过 20" in too_many.json()["detail"]
    assert client.http.put(put, json=[good]).status_code == 422
    assert [h.url for h in client.get_webhooks(project.id).hooks] == [good["url"]]

    secret = "https://oapi.dingtalk.com/robot/send?access_token=abc123"
    client.set_webhooks(project.id, [{"url": secret, "format": "dingtalk", "events": ["run.failed", "run.failed"]}])
    assert client.get_webhooks(project.id).hooks[0].events == ["run.failed"]
    audit = next(e for e in client.audit_trail(project.id) if e.action == "设置通知")
    assert "https://oapi.dingtalk.com/robot/send?…" in audit.details and "abc123" not in audit.details


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    home = tmp_path_factory.mktemp("notifications-auth") / "home"
    admin_token = cli_token(home, "管理员", "admin")
    api = ApiProcess(home, LTM_AUTH="true").start()
    clients = {"管理员": Client(api.url, token=admin_token)}
    for who in ("小李", "小张"):
        clients[who] = Client(api.url, token=clients["管理员"].create_token(who, "member").token)
    yield clients
    for sdk in clients.values():
        sdk.close()
    api.stop()


def test_only_the_owner_or_an_admin_sets_webhooks_and_only_members_read_them(secured):
    li, zhang, admin = secured["小李"], secured["小张"], secured["管理员"]
    project = li.create_project(unique("通知"), task_type="文本摘要")
    hooks = [{"url": "https://example.com/hook?token=s3cret", "events": ["run.failed"]}]
    with pytest.raises(ApiError) as refused:
        zhang.set_webhooks(project.id, hooks)
    assert refused.value.status_code == 403 and "只有项目负责人" in refused.value.detail
    with pytest.raises(ApiError) as hidden:
        zhang.get_webhooks(project.id)
    assert hidden.value.status_code == 403
    assert li.set_webhooks(project.id, hooks).updated_by == "小李"
    li.set_members(project.id, ["小张"])
    assert zhang.get_webhooks(project.id).hooks[0].url == hooks[0]["url"]
    assert zhang.webhook_deliveries(project.id) == []
    assert admin.set_webhooks(project.id, []).updated_by == "管理员"


# ---- console


def test_the_console_adds_and_removes_webhooks_and_shows_deliveries(console_env, shared_client, receiver):
    to = paths("console")
    project = shared_client.create_project(unique("通知"), owner="测试")
    at = open_console("project", project_id=project.id, tab="通知")
    assert "还没有设置 Webhook" in " ".join(str(i.value) for i in at.info)

    new = {w.key.rsplit("_", 1)[-1]: w for w in [*at.text_input, *at.selectbox, *at.multiselect] if "hook_new" in w.key}
    new["url"].set_value(receiver.url(to["dingtalk"]))
    new["format"].select("dingtalk")
    new["events"].set_value(["run.completed", "run.failed"])
    next(b for b in at.button if b.key and b.key.startswith("hook_new")).click().run()
    assert not at.exception, [e.message for e in at.exception]
    [hook] = shared_client.get_webhooks(project.id).hooks
    assert (hook.url, hook.format, hook.events) == (
        receiver.url(to["dingtalk"]),
        "dingtalk",
        ["run.completed", "run.failed"],
    )
    assert "已添加 Webhook" in [str(s.value) for s in at.success]

    run = running(shared_client, project.id, "控制台看到的运行")
    shared_client.report(project.id, run.id, status="已完成")
    settled(shared_client, project.id, 1)
    at.button(key="webhook_deliveries_refresh").click().run()
    table = next(d.value for d in at.dataframe if "尝试次数" in d.value.columns)
    row = table.iloc[0]
    assert (row["事件"], row["状态"], row["尝试次数"], row["格式"]) == (
        "运行完成（run.completed）",
        "✅ 已送达",
        1,
        "钉钉",
    )

    next(b for b in at.button if b.key and b.key.startswith("hook_0_") and b.key.endswith("_remove")).click().run()
    assert shared_client.get_webhooks(project.id).hooks == []


# ---- Prefect


def test_with_ltm_up_an_event_reaches_prefect_and_the_ready_automation_reacts(ltm_system):
    with Client(ltm_system.api_url) as client:
        project = client.create_project(unique("通知"), owner="测试")
        run = client.create_run(project.id, "m", "d", entrypoint="python nope.py", source="tests/scripts")
        wait_until(lambda: client.get_run(project.id, run.id).status == RunStatus.FAILED, timeout=120, message="fail")

    def ltm_event():
        with prefect_client(ltm_system.prefect_api_url) as prefect:
            events = prefect.read_events(
                EventFilter(
                    event=EventNameFilter(name=["ltm.run.failed"]),
                    resource=EventResourceFilter(id=[f"ltm.run.{run.id}"]),
                ),
                limit=10,
            ).events
        return events[0] if events else None

    event = wait_until(ltm_event, timeout=60, message="ltm.run.failed in Prefect")
    assert event.resource["prefect.resource.name"] == run.name
    assert event.related[0]["prefect.resource.id"] == f"ltm.project.{project.id}"
    assert event.payload["run_id"] == run.id and event.payload["status"] == "失败"
    assert event.payload["link"].startswith(f"{ltm_system.console_url}/run?")

    with prefect_client(ltm_system.prefect_api_url) as prefect:
        automations = {name: prefect.read_automations_by_name(name) for name in map(automation_name, READY)}
    assert all(len(found) == 1 for found in automations.values()), automations
    failed = automations["ltm：运行失败"][0]

    def triggered():
        with prefect_client(ltm_system.prefect_api_url) as prefect:
            return prefect.read_events(
                EventFilter(
                    event=EventNameFilter(name=["prefect.automation.triggered"]),
                    resource=EventResourceFilter(id=[f"prefect.automation.{failed.id}"]),
                    related=EventRelatedFilter(id=[f"prefect.event.{event.id}"]),
                ),
                limit=10,
            ).events

    wait_until(triggered, timeout=60, message="the ready automation to react")
