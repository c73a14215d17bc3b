"""Arrow IPC ingest (the SDK's format) over HTTP: stored exactly like JSON, every malformed stream a clear 422."""

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from ltm import Client, arrow_batches
from ltm.models import MAX_BATCH_ITEMS, MAX_LOG_MESSAGE
from ltm.reporter import MAX_BATCH_TEXT, TRUNCATED, RunReporter
from tests.helpers import new_project, new_run, unique

T0 = datetime(2024, 5, 6, 7, 0, tzinfo=timezone.utc)
US0 = arrow_batches.micros(T0)
ARROW = {"Content-Type": arrow_batches.MEDIA_TYPE}


@pytest.fixture
def run(shared_http) -> dict:
    return new_run(
        shared_http, new_project(shared_http, name=unique("箭头"), owner="小李")["id"], model="m", dataset="d"
    )


def url(run: dict, suffix: str) -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}{suffix}"


def stream(table: pa.Table, batch_id: str | None = "b1") -> bytes:
    if batch_id is None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()
    return arrow_batches.encode(table, batch_id)


def points(count: int, name: str = "loss") -> pa.Table:
    return arrow_batches.metric_table(
        [name] * count,
        list(range(count)),
        [1.0 / (i + 1) for i in range(count)],
        [US0 + i * 1_000_000 for i in range(count)],
    )


def test_arrow_batches_are_stored_once_and_read_back_like_json(shared_http, run):
    lines = arrow_batches.log_table([US0, US0 + 1_000_000], ["INFO", "WARNING"], ["第一行 ✓", "损失上升"])
    first = shared_http.post(url(run, "/logs"), content=stream(lines, "logs-1"), headers=ARROW).json()
    again = shared_http.post(url(run, "/logs"), content=stream(lines, "logs-1"), headers=ARROW).json()
    assert first == {"batch_id": "logs-1", "accepted": 2, "duplicate": False}
    assert again == {"batch_id": "logs-1", "accepted": 0, "duplicate": True}
    page = shared_http.get(url(run, "/logs")).json()
    assert page["total"] == 2
    assert [(i["timestamp"], i["level"], i["message"]) for i in page["items"]] == [
        ("2024-05-06T07:00:00Z", "INFO", "第一行 ✓"),
        ("2024-05-06T07:00:01Z", "WARNING", "损失上升"),
    ]

    assert (
        shared_http.post(url(run, "/metrics"), content=stream(points(3), "m-1"), headers=ARROW).json()["accepted"] == 3
    )
    series = shared_http.get(url(run, "/metrics")).json()["series"]
    assert series[0]["total_points"] == 3
    assert shared_http.get(url(run, "")).json()["metrics"] == {"loss": pytest.approx(1 / 3)}


def test_naive_and_other_zone_timestamps_are_read_as_utc_instants(shared_http, run):
    cst = timezone(timedelta(hours=8))
    naive = pa.table(
        {
            "timestamp": pa.array([datetime(2024, 5, 6, 7, 0)], pa.timestamp("ms")),
            "level": ["INFO"],
            "message": ["无时区"],
        }
    )
    zoned = pa.table(
        {
            "timestamp": pa.array([datetime(2024, 5, 6, 15, 0, 1, tzinfo=cst)], pa.timestamp("s", tz="+08:00")),
            "level": ["INFO"],
            "message": ["东八区"],
        }
    )
    for batch_id, table in (("naive", naive), ("zoned", zoned)):
        assert shared_http.post(url(run, "/logs"), content=stream(table, batch_id), headers=ARROW).status_code == 200
    items = shared_http.get(url(run, "/logs")).json()["items"]
    assert [(i["timestamp"], i["message"]) for i in items] == [
        ("2024-05-06T07:00:00Z", "无时区"),
        ("2024-05-06T07:00:01Z", "东八区"),
    ]


def _log_columns(**overrides) -> pa.Table:
    columns = {
        "timestamp": pa.array([T0], arrow_batches.TIMESTAMP),
        "level": pa.array(["INFO"]),
        "message": pa.array(["好"]),
    }
    columns.update(overrides)
    return pa.table({name: value for name, value in columns.items() if value is not None})


@pytest.mark.parametrize(
    ("kind", "body", "field", "message"),
    [
        ("logs", b"not an arrow stream", "body", "不是有效的 Arrow IPC 流"),
        ("logs", stream(_log_columns(), batch_id=None), "batch_id", "batch_id"),
        ("logs", stream(_log_columns(), batch_id="x" * 129), "batch_id", "batch_id"),
        ("logs", stream(_log_columns(level=None)), "level", "缺少这一列"),
        ("logs", stream(_log_columns(level=pa.array(["LOUD"]))), "level", "第 0 行必须是"),
        ("logs", stream(_log_columns(level=pa.array([None], pa.string()))), "level", "不能为空值"),
        ("logs", stream(_log_columns(message=pa.array(["长" * (MAX_LOG_MESSAGE + 1)]))), "message", "长度不能超过"),
        ("logs", stream(_log_columns(timestamp=pa.array(["昨天"]))), "timestamp", "类型应为"),
        (
            "logs",
            stream(_log_columns(timestamp=pa.array([-62135596800 * 10**6], pa.timestamp("us")))),
            "timestamp",
            "公元 1 年到 9999 年",
        ),
        (
            "metrics",
            stream(arrow_batches.metric_table(["loss", ""], [1, 2], [1.0, 2.0], [US0, US0])),
            "name",
            "第 1 行长度必须在 1 到 200",
        ),
        ("metrics", stream(arrow_batches.metric_table(["loss"], [-1], [1.0], [US0])), "step", "不能小于 0"),
        (
            "metrics",
            stream(arrow_batches.metric_table(["loss", "loss"], [1, 2], [1.0, float("nan")], [US0, US0])),
            "value",
            "第 1 行必须是有限数值",
        ),
        (
            "metrics",
            stream(
                pa.table(
                    {"name": ["a"], "step": [1.5], "value": [1.0], "timestamp": pa.array([T0], arrow_batches.TIMESTAMP)}
                )
            ),
            "step",
            "类型应为 int64",
        ),
        ("metrics", stream(points(MAX_BATCH_ITEMS + 1)), "body", f"最多 {MAX_BATCH_ITEMS} 行"),
    ],
)
def test_malformed_arrow_streams_are_a_422_naming_the_column_and_store_nothing(
    shared_http, run, kind, body, field, message
):
    response = shared_http.post(url(run, f"/{kind}"), content=body, headers=ARROW)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert field in [e["field"] for e in answer["errors"]], answer
    assert message in answer["detail"], answer
    assert shared_http.get(url(run, "/logs")).json()["total"] == 0
    assert shared_http.get(url(run, "/metrics")).json()["series"] == []


def test_the_reporter_truncates_overlong_lines_and_turns_non_finite_values_into_warnings(shared_api, run):
    with Client(shared_api.url) as client:
        reporter = RunReporter(client, run["project_id"], run["id"], interval=60)
        reporter.log("长" * (MAX_LOG_MESSAGE + 50))
        reporter.metrics(7, {"loss": float("nan"), "lr": 0.1})
        reporter.close()
        page = client.get_logs(run["project_id"], run["id"])
        series = client.get_metrics(run["project_id"], run["id"]).series
    truncated, warning = page.items
    assert len(truncated.message) == MAX_LOG_MESSAGE and truncated.message.endswith(TRUNCATED)
    assert warning.level == "WARNING" and "loss" in warning.message and "第 7 步" in warning.message
    assert [(s.name, s.total_points) for s in series] == [("lr", 1)]


def test_the_reporter_splits_a_large_backlog_into_batches_under_the_body_limit(shared_api, run):
    line = "日" * 9_000
    count = 2 * MAX_BATCH_TEXT // len(line) + 10
    with Client(shared_api.url) as client:
        reporter = RunReporter(client, run["project_id"], run["id"], interval=60)
        for i in range(count):
            reporter.log(line, timestamp=T0 + timedelta(microseconds=i))
        reporter.close()
        assert client.get_logs(run["project_id"], run["id"], page_size=1).total == count
