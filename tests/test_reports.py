"""POST …/report: a reporter's flush (a log batch, a metric batch, progress) stored in one commit, whole or not at
all, as JSON or as the SDK's framed Arrow body; and the SDK's reporter sending one request per flush."""

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from ltm import Client, arrow_batches
from ltm.client import ApiError
from ltm.models import RunStatus
from ltm.reporter import MAX_REPORT_BYTES, RunReporter
from tests.helpers import new_project, new_run, unique

T0 = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)
REPORT = {"Content-Type": arrow_batches.REPORT_MEDIA_TYPE}


@pytest.fixture
def run(shared_http) -> dict:
    project = new_project(shared_http, name=unique("上报"), owner="小周")
    return new_run(shared_http, project["id"], model="m", dataset="d")


def url(run: dict, suffix: str = "/report") -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}{suffix}"


def json_report(logs_id: str = "l1", metrics_id: str = "m1", step: int = 3, lines: int = 4, value: float = 1.5) -> dict:
    return {
        "logs": {
            "batch_id": logs_id,
            "lines": [
                {"timestamp": (T0 + timedelta(seconds=i)).isoformat(), "message": f"第 {i} 行"} for i in range(lines)
            ],
        },
        "metrics": {
            "batch_id": metrics_id,
            "points": [
                {"name": "loss", "step": step, "value": value, "timestamp": T0.isoformat()},
                {"name": "lr", "step": step, "value": 0.01, "timestamp": T0.isoformat()},
            ],
        },
        "progress": {"progress": 0.3, "current_step": step, "total_steps": 10, "gpu_utilization": 0.9},
    }


def arrow_report(progress: dict, lines: int = 0, points: int = 0, logs_id: str = "al", metrics_id: str = "am") -> bytes:
    start = arrow_batches.micros(T0)
    logs = (
        arrow_batches.encode(
            arrow_batches.log_table([start + i for i in range(lines)], ["INFO"] * lines, ["行"] * lines), logs_id
        )
        if lines
        else None
    )
    metrics = (
        arrow_batches.encode(
            arrow_batches.metric_table(["acc"] * points, list(range(points)), [0.5] * points, [start] * points),
            metrics_id,
        )
        if points
        else None
    )
    return arrow_batches.encode_report(progress, logs, metrics)


def stored(http: httpx.Client, run: dict) -> tuple[int, dict[str, int], dict]:
    """(log lines, points per series, the run) as the API reads them back."""
    lines = http.get(url(run, "/logs"), params={"page_size": 1}).json()["total"]
    series = {s["name"]: s["total_points"] for s in http.get(url(run, "/metrics")).json()["series"]}
    return lines, series, http.get(url(run, "")).json()


def test_a_json_report_stores_logs_metrics_and_progress_and_a_retry_counts_once(shared_http, run):
    first = shared_http.post(url(run), json=json_report())
    assert first.status_code == 200, first.text
    assert first.json() == {
        "logs": {"batch_id": "l1", "accepted": 4, "duplicate": False},
        "metrics": {"batch_id": "m1", "accepted": 2, "duplicate": False},
        "status": "排队中",
    }
    again = shared_http.post(url(run), json=json_report())
    assert again.json()["logs"] == {"batch_id": "l1", "accepted": 0, "duplicate": True}
    assert again.json()["metrics"]["duplicate"] is True
    lines, series, stored_run = stored(shared_http, run)
    assert (lines, series) == (4, {"loss": 1, "lr": 1})
    assert stored_run["progress"] == 0.3 and stored_run["current_step"] == 3 and stored_run["total_steps"] == 10
    assert stored_run["gpu_utilization"] == 0.9
    assert stored_run["metrics"] == {"loss": 1.5, "lr": 0.01}


def test_an_arrow_report_is_stored_like_json_and_parts_may_be_left_out(shared_http, run):
    answer = shared_http.post(url(run), content=arrow_report({"current_step": 7}, lines=5, points=3), headers=REPORT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["logs"]["accepted"] == 5 and answer.json()["metrics"]["accepted"] == 3
    only_progress = shared_http.post(url(run), content=arrow_report({"progress": 0.5}), headers=REPORT)
    assert only_progress.json() == {"logs": None, "metrics": None, "status": "排队中"}
    only_metrics = shared_http.post(url(run), json={"metrics": json_report()["metrics"]})
    assert only_metrics.json()["logs"] is None and only_metrics.json()["metrics"]["accepted"] == 2
    lines, series, stored_run = stored(shared_http, run)
    assert lines == 5 and series == {"acc": 3, "loss": 1, "lr": 1}
    assert stored_run["current_step"] == 7 and stored_run["progress"] == 0.5  # a field left out stays as it was


def test_a_report_is_stored_whole_or_not_at_all(shared_http, run):
    assert shared_http.post(url(run), json=json_report()).status_code == 200
    reused = json_report(logs_id="l2", metrics_id="m1", step=9, value=7.0)  # m1 again, other content
    refused = shared_http.post(url(run), json=reused)
    assert refused.status_code == 409
    assert "batch_id m1 已用于" in refused.json()["detail"] and "另一批指标" in refused.json()["detail"]
    lines, series, stored_run = stored(shared_http, run)
    assert lines == 4 and series == {"loss": 1, "lr": 1}  # the new log batch was not stored either
    assert stored_run["current_step"] == 3 and stored_run["metrics"]["loss"] == 1.5


def test_a_step_behind_the_runs_own_keeps_the_latest_metrics(shared_http, run):
    shared_http.post(url(run), json=json_report(step=8, value=2.0))
    shared_http.post(url(run), json=json_report(logs_id="l2", metrics_id="m2", step=5, value=9.0))
    assert stored(shared_http, run)[2]["metrics"]["loss"] == 2.0


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{}", {"Content-Type": "text/plain"}, 415, "ltm 报告"),
        (b"no header line", REPORT, 422, "缺少首行"),
        (b"[1]\n", REPORT, 422, "首行必须是只含"),
        (b"{bad json\n", REPORT, 422, "首行不是有效的 JSON"),
        (b'{"progress": {}, "logs": 10, "metrics": 0}\nshort', REPORT, 422, "字节数与请求体长度不符"),
        (b'{"progress": {}, "logs": -1, "metrics": 0}\n', REPORT, 422, "字节数与请求体长度不符"),
        (b'{"progress": {}, "logs": 4, "metrics": 0}\nabcd', REPORT, 422, "不是有效的 Arrow IPC 流"),
        (arrow_batches.encode_report({"current_step": -1}), REPORT, 422, "当前步数"),
        (arrow_batches.encode_report({"status": "已完成"}), REPORT, 422, "status"),
        (arrow_batches.encode_report({"progress": 1.5}), REPORT, 422, "进度"),
        (b'{"progress": {"current_step": "many"}}', {"Content-Type": "application/json"}, 422, "当前步数"),
        (b'{"logs": {"lines": []}}', {"Content-Type": "application/json"}, 422, "batch_id"),
    ],
)
def test_a_malformed_report_is_refused_with_a_clear_error_and_stores_nothing(
    shared_http, run, body, headers, status, message
):
    answer = shared_http.post(url(run), content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert message in answer.text, answer.text
    lines, series, stored_run = stored(shared_http, run)
    assert (lines, series, stored_run["current_step"]) == (0, {}, 0)


def test_a_bad_row_in_one_part_refuses_the_whole_report(shared_http, run):
    start = arrow_batches.micros(T0)
    bad_logs = arrow_batches.encode(arrow_batches.log_table([start], ["LOUD"], ["x"]), "bad")
    good_metrics = arrow_batches.encode(arrow_batches.metric_table(["acc"], [1], [0.1], [start]), "ok")
    body = arrow_batches.encode_report({"current_step": 4}, bad_logs, good_metrics)
    answer = shared_http.post(url(run), content=body, headers=REPORT)
    assert answer.status_code == 422 and "level" in answer.text
    assert stored(shared_http, run)[:2] == (0, {}) and stored(shared_http, run)[2]["current_step"] == 0


def test_reports_for_unknown_or_foreign_runs_are_404(shared_http, run):
    other = new_run(shared_http, model="m", dataset="d")
    assert shared_http.post(f"/projects/{run['project_id']}/runs/run_nope/report", json={}).status_code == 404
    assert shared_http.post(f"/projects/proj_nope/runs/{run['id']}/report", json={}).status_code == 404
    foreign = shared_http.post(f"/projects/{other['project_id']}/runs/{run['id']}/report", json=json_report())
    assert foreign.status_code == 404 and "运行" in foreign.json()["detail"]
    assert stored(shared_http, run)[0] == 0


def test_an_ended_run_refuses_new_data_and_progress_but_tells_its_status(shared_http, run):
    shared_http.post(url(run), json=json_report())
    assert shared_http.post(url(run, "/cancel")).status_code in (200, 202)
    ended = shared_http.get(url(run, "")).json()["status"]
    assert RunStatus(ended).is_terminal
    data = shared_http.post(url(run), json=json_report(logs_id="l9", metrics_id="m9"))
    assert data.status_code == 409 and "已结束" in data.json()["detail"]
    progress = shared_http.post(url(run), json={"progress": {"current_step": 9}})
    assert progress.status_code == 409
    assert shared_http.post(url(run), json={}).json() == {"logs": None, "metrics": None, "status": ended}
    retried = shared_http.post(url(run), json={"logs": json_report()["logs"]})  # sent before the end: still once
    assert retried.status_code == 200 and retried.json()["logs"]["duplicate"] is True
    assert stored(shared_http, run)[0] == 4


def test_the_reporter_sends_one_request_per_flush_and_learns_the_runs_status(shared_api, shared_http, run):
    sent: list[str] = []
    http = httpx.Client(
        base_url=shared_api.url, event_hooks={"request": [lambda request: sent.append(request.url.path)]}
    )
    with Client(http=http) as client:
        reporter = RunReporter(client, run["project_id"], run["id"], interval=3600)
        reporter.log("开始训练")
        reporter.metrics(1, {"loss": 2.0})
        reporter.progress(current_step=1, progress=0.1, gpu_utilization=None)
        reporter.flush()
        assert sent == [url(run)]
        assert reporter.remote_status == RunStatus.QUEUED
        shared_http.post(url(run, "/cancel"))
        reporter.progress(current_step=2)
        reporter.flush()  # progress of an ended run has nowhere to go: dropped, not an error
        assert reporter.remote_status.is_terminal
        reporter.log("太迟了")
        with pytest.raises(ApiError) as refused:
            reporter.flush()
        assert refused.value.status_code == 409
    lines, series, stored_run = stored(shared_http, run)
    assert (lines, series, stored_run["current_step"]) == (1, {"loss": 1}, 1)


def test_the_reporter_refuses_fields_a_report_cannot_carry(shared_api, run):
    with Client(shared_api.url) as client:
        reporter = RunReporter(client, run["project_id"], run["id"], interval=3600)
        with pytest.raises(ValueError, match="status"):
            reporter.progress(status="已完成")
        reporter.close()


def test_the_reporter_sends_log_and_metric_batches_too_large_together_in_separate_reports(shared_api, run):
    line, name = "日" * 9_000, "指" * 60
    count = 400  # 10.8 MB of UTF-8: one log batch; 40,000 points of a long name: one 7.6 MB metric batch
    sizes: list[int] = []
    http = httpx.Client(
        base_url=shared_api.url,
        timeout=120,
        event_hooks={"request": [lambda request: sizes.append(len(request.content))]},
    )
    with Client(http=http) as client:
        reporter = RunReporter(client, run["project_id"], run["id"], interval=3600)
        for i in range(count):
            reporter.log(line, timestamp=T0 + timedelta(microseconds=i))
        for step in range(40_000):
            reporter.metrics(step, {name: 1.0})
        reporter.close()
        assert len(sizes) == 2 and all(size <= MAX_REPORT_BYTES for size in sizes)
        assert client.get_logs(run["project_id"], run["id"], page_size=1).total == count


def test_progress_comes_after_the_checkpoints_registered_in_the_same_flush(shared_api, shared_http, run):
    """Whoever sees a run at step N sees the artifacts registered before it: a flush with artifacts sends its
    batches, then the artifacts, then the progress."""
    sent: list[tuple[str, dict]] = []

    def record(request: httpx.Request) -> None:
        body = request.read()
        progress = arrow_batches.decode_report(body)[0] if request.url.path.endswith("/report") else {}
        sent.append((request.url.path.rsplit("/", 1)[-1], progress))

    http = httpx.Client(base_url=shared_api.url, event_hooks={"request": [record]})
    path = f"s3://artifacts/{run['project_id']}/{run['id']}/config.json"
    with Client(http=http) as client:
        reporter = RunReporter(client, run["project_id"], run["id"], interval=3600)
        reporter.metrics(20, {"loss": 1.0})
        reporter.artifact(type="config", name="第 20 步的配置", path=path, step=20)
        reporter.progress(current_step=20)
        reporter.flush()
        assert sent == [("report", {}), ("artifacts", {}), ("report", {"current_step": 20})]
        sent.clear()
        reporter.metrics(21, {"loss": 0.9})
        reporter.progress(current_step=21)
        reporter.flush()
        assert sent == [("report", {"current_step": 21})]
    assert [a["step"] for a in shared_http.get(url(run, "/artifacts")).json()["items"]] == [20]
