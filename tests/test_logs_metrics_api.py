"""Log and metric ingest (idempotent batches) and their queries: pages, time windows, filters, downsampling."""

import random
import threading
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from ltm import Client
from ltm.vocabulary import field_label
from tests.helpers import new_project, new_run, unique

T0 = datetime(2024, 1, 2, 10, 0, tzinfo=timezone.utc)
CST = timezone(timedelta(hours=8))


@pytest.fixture
def run(shared_http) -> dict:
    return run_of(shared_http)


def url(run: dict, suffix: str) -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}{suffix}"


def make_lines(
    count: int,
    start: datetime = T0,
    every: timedelta = timedelta(seconds=1),
    level: str = "INFO",
    text: str = "第 {i} 行",
) -> list[dict]:
    return [
        {"timestamp": (start + i * every).isoformat(), "level": level, "message": text.format(i=i)}
        for i in range(count)
    ]


def send_logs(http, run: dict, lines: list[dict], batch_id: str | None = None) -> dict:
    response = http.post(url(run, "/logs"), json={"batch_id": batch_id or uuid.uuid4().hex, "lines": lines})
    assert response.status_code == 200, response.text
    return response.json()


def get_logs(http, run: dict, **params) -> dict:
    response = http.get(url(run, "/logs"), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def messages(page: dict) -> list[str]:
    return [item["message"] for item in page["items"]]


def at(seconds: int, tz: timezone = timezone.utc) -> str:
    return (T0 + timedelta(seconds=seconds)).astimezone(tz).isoformat()


# Log ingest


def test_same_batch_id_is_stored_once(shared_http, run):
    lines = make_lines(3)

    first = send_logs(shared_http, run, lines, "batch-1")
    second = send_logs(shared_http, run, lines, "batch-1")

    assert first == {"batch_id": "batch-1", "accepted": 3, "duplicate": False}
    assert second == {"batch_id": "batch-1", "accepted": 0, "duplicate": True}
    assert get_logs(shared_http, run)["total"] == 3


def test_batch_ids_are_per_run_and_per_kind(shared_http, run):
    other = shared_http.post(f"/projects/{run['project_id']}/runs", json={"model": "m", "dataset": "d"}).json()
    send_logs(shared_http, run, make_lines(2), "shared")

    assert send_logs(shared_http, other, make_lines(2), "shared")["duplicate"] is False
    metrics = shared_http.post(
        url(run, "/metrics"),
        json={"batch_id": "shared", "points": [{"name": "loss", "step": 1, "value": 1.0, "timestamp": at(0)}]},
    )
    assert metrics.json()["duplicate"] is False
    assert get_logs(shared_http, other)["total"] == 2


def test_concurrent_identical_batches_store_once(shared_http, shared_api, run):
    lines = make_lines(200)
    barrier = threading.Barrier(8)
    results: list = []

    def send():
        with httpx.Client(base_url=shared_api.url, timeout=30) as own:
            barrier.wait()
            results.append(own.post(url(run, "/logs"), json={"batch_id": "same", "lines": lines}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status_code for r in results] == [200] * 8, [r.text for r in results]
    assert sorted(r.json()["duplicate"] for r in results) == [False] + [True] * 7
    assert sum(r.json()["accepted"] for r in results) == 200
    page = get_logs(shared_http, run, page_size=500)
    assert page["total"] == 200
    assert messages(page) == [line["message"] for line in lines]


def test_concurrent_distinct_batches_all_stored_in_order(shared_http, shared_api, run):
    barrier = threading.Barrier(6)
    codes: list[int] = []

    def send(k: int):
        lines = [{"timestamp": at(0), "message": f"b{k}-{i:03d}"} for i in range(100)]
        with httpx.Client(base_url=shared_api.url, timeout=30) as own:
            barrier.wait()
            codes.append(own.post(url(run, "/logs"), json={"batch_id": f"b{k}", "lines": lines}).status_code)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert codes == [200] * 6
    first, second = get_logs(shared_http, run, page_size=300), get_logs(shared_http, run, page=2, page_size=300)
    assert first["total"] == 600
    stored = messages(first) + messages(second)
    assert len(stored) == 600
    for k in range(6):
        mine = [m for m in stored if m.startswith(f"b{k}-")]
        assert mine == [f"b{k}-{i:03d}" for i in range(100)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": []}, "batch_id"),
        ({"batch_id": "", "lines": []}, "batch_id"),
        ({"batch_id": "x" * 129, "lines": []}, "batch_id"),
        ({"batch_id": "b"}, "lines"),
        ({"batch_id": "b", "lines": {"message": "x"}}, "lines"),
        ({"batch_id": "b", "lines": [{"message": "无时间"}]}, "lines.0.timestamp"),
        ({"batch_id": "b", "lines": [{"timestamp": "昨天", "message": "x"}]}, "lines.0.timestamp"),
        (
            {"batch_id": "b", "lines": [{"timestamp": "2024-01-02T10:00:00Z", "level": "WARN", "message": "x"}]},
            "lines.0.level",
        ),
        (
            {"batch_id": "b", "lines": [{"timestamp": "2024-01-02T10:00:00Z", "message": "x" * 10_001}]},
            "lines.0.message",
        ),
        ({"batch_id": "b", "lines": [], "run_id": "r"}, "run_id"),
    ],
)
def test_log_batch_validation(shared_http, run, body, field):
    response = shared_http.post(url(run, "/logs"), json=body)
    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]
    assert get_logs(shared_http, run)["total"] == 0


def test_level_defaults_to_info_and_long_message_fits(shared_http, run):
    send_logs(shared_http, run, [{"timestamp": at(0), "message": "x" * 10_000}])
    item = get_logs(shared_http, run)["items"][0]
    assert item["level"] == "INFO"
    assert len(item["message"]) == 10_000


def test_unknown_run_logs_404(shared_http, run):
    response = shared_http.post(
        f"/projects/{run['project_id']}/runs/run_missing/logs", json={"batch_id": "b", "lines": make_lines(1)}
    )
    assert response.status_code == 404
    assert shared_http.get(f"/projects/{run['project_id']}/runs/run_missing/logs").status_code == 404


# Pages


def test_empty_run_has_no_logs(shared_http, run):
    assert get_logs(shared_http, run) == {"page": 1, "page_size": 50, "total": 0, "items": []}
    assert get_logs(shared_http, run, page=3, page_size=10) == {"page": 3, "page_size": 10, "total": 0, "items": []}


def test_pages(shared_http, run):
    lines = make_lines(45)
    send_logs(shared_http, run, lines)
    expected = [line["message"] for line in lines]

    pages = [get_logs(shared_http, run, page=n, page_size=20) for n in (1, 2, 3, 4)]

    assert [len(p["items"]) for p in pages] == [20, 20, 5, 0]
    assert {p["total"] for p in pages} == {45}
    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    assert messages(pages[0]) + messages(pages[1]) + messages(pages[2]) == expected
    assert messages(pages[2]) == expected[40:]
    assert get_logs(shared_http, run, page=10_000, page_size=500) == {
        "page": 10_000,
        "page_size": 500,
        "total": 45,
        "items": [],
    }
    assert messages(get_logs(shared_http, run, page_size=500)) == expected
    assert messages(get_logs(shared_http, run, page_size=1, page=45)) == expected[44:]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"page_size": -5}, "page_size"),
        ({"page_size": "二十"}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": 1.5}, "page"),
        ({"level": "WARN"}, "level"),
        ({"level": "warning"}, "level"),
        ({"start_time": "昨天"}, "start_time"),
        ({"end_time": "2024-13-01T00:00:00Z"}, "end_time"),
    ],
)
def test_invalid_query_parameters(shared_http, run, params, field):
    response = shared_http.get(url(run, "/logs"), params=params)
    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]


# Time windows


def test_time_window_start_inclusive_end_exclusive(shared_http, run):
    send_logs(shared_http, run, make_lines(10))

    assert messages(get_logs(shared_http, run, start_time=at(3), end_time=at(7))) == [f"第 {i} 行" for i in range(3, 7)]
    assert messages(get_logs(shared_http, run, start_time=at(3))) == [f"第 {i} 行" for i in range(3, 10)]
    assert messages(get_logs(shared_http, run, end_time=at(7))) == [f"第 {i} 行" for i in range(0, 7)]
    assert get_logs(shared_http, run, start_time=at(3), end_time=at(7))["total"] == 4
    assert get_logs(shared_http, run, start_time=at(5), end_time=at(5))["total"] == 0
    sub_second = get_logs(shared_http, run, start_time=(T0 + timedelta(seconds=2, microseconds=1)).isoformat())
    assert messages(sub_second)[0] == "第 3 行"


def test_time_window_in_other_timezones_means_the_same_instants(shared_http, run):
    send_logs(shared_http, run, make_lines(10))
    utc_page = get_logs(shared_http, run, start_time=at(3), end_time=at(7))

    cst_page = get_logs(shared_http, run, start_time=at(3, CST), end_time=at(7, CST))
    naive_page = get_logs(
        shared_http,
        run,
        start_time=(T0 + timedelta(seconds=3)).replace(tzinfo=None).isoformat(),
        end_time="2024-01-02T10:00:07Z",
    )
    mixed = get_logs(shared_http, run, start_time="2024-01-02T18:00:03+08:00", end_time="2024-01-02T10:00:07Z")

    assert at(3, CST) == "2024-01-02T18:00:03+08:00"
    assert messages(cst_page) == messages(utc_page) == messages(naive_page) == messages(mixed)
    assert len(messages(utc_page)) == 4


def test_sdk_sends_timezone_aware_windows(shared_api, run, shared_http):
    send_logs(shared_http, run, make_lines(10))
    with Client(shared_api.url) as sdk:
        page = sdk.get_logs(
            run["project_id"],
            run["id"],
            start_time=T0.astimezone(CST) + timedelta(seconds=3),
            end_time=T0.astimezone(CST) + timedelta(seconds=7),
        )
    assert [item.message for item in page.items] == [f"第 {i} 行" for i in range(3, 7)]


def test_timestamps_sent_in_other_timezones_are_stored_as_utc(shared_http, run):
    send_logs(
        shared_http,
        run,
        [
            {"timestamp": "2024-01-02T18:00:05+08:00", "message": "东八区"},
            {"timestamp": "2024-01-02T05:00:04-05:00", "message": "西五区"},
        ],
    )
    items = get_logs(shared_http, run)["items"]
    assert [(i["timestamp"], i["message"]) for i in items] == [
        ("2024-01-02T10:00:04Z", "西五区"),
        ("2024-01-02T10:00:05Z", "东八区"),
    ]
    assert messages(get_logs(shared_http, run, start_time=at(5), end_time=at(6))) == ["东八区"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-01-02T10:00:05Z", "2024-01-02T10:00:04Z"),
        ("2024-01-02T18:00:05+08:00", "2024-01-02T10:00:04Z"),
        ("2024-01-02T10:00:05", "2024-01-02T17:00:04+08:00"),
    ],
)
def test_start_after_end_is_rejected(shared_http, run, start, end):
    response = shared_http.get(url(run, "/logs"), params={"start_time": start, "end_time": end})
    assert response.status_code == 422, response.text
    assert "start_time" in response.json()["detail"]


# Ordering and filters


def test_identical_timestamps_keep_insertion_order(shared_http, run):
    send_logs(shared_http, run, [{"timestamp": at(1), "message": f"甲-{i}"} for i in range(5)])
    send_logs(shared_http, run, [{"timestamp": at(1), "message": f"乙-{i}"} for i in range(5)])
    send_logs(shared_http, run, [{"timestamp": at(0), "message": "更早"}])
    expected = ["更早"] + [f"甲-{i}" for i in range(5)] + [f"乙-{i}" for i in range(5)]

    assert messages(get_logs(shared_http, run)) == expected
    paged = [m for n in range(1, 5) for m in messages(get_logs(shared_http, run, page=n, page_size=3))]
    assert paged == expected


def test_level_filter_is_a_minimum_severity(shared_http, run):
    levels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    send_logs(
        shared_http,
        run,
        [{"timestamp": at(i), "level": level, "message": level.lower()} for i, level in enumerate(levels)],
    )

    def at_least(level):
        page = get_logs(shared_http, run, level=level)
        assert page["total"] == len(page["items"])
        return [item["level"] for item in page["items"]]

    assert at_least("DEBUG") == levels
    assert at_least("INFO") == levels[1:]
    assert at_least("WARNING") == ["WARNING", "ERROR", "CRITICAL"]
    assert at_least("ERROR") == ["ERROR", "CRITICAL"]
    assert at_least("CRITICAL") == ["CRITICAL"]


def test_text_query_is_case_insensitive_and_literal(shared_http, run):
    send_logs(
        shared_http,
        run,
        [
            {"timestamp": at(0), "message": "第 500 步 - loss=1.86 lr=2e-5"},
            {"timestamp": at(1), "message": "Eval LOSS 1.70"},
            {"timestamp": at(2), "message": "显存占用 100%"},
            {"timestamp": at(3), "message": "显存占用 1000"},
            {"timestamp": at(4), "level": "ERROR", "message": "loss 变成 NaN"},
        ],
    )

    assert messages(get_logs(shared_http, run, q="LOSS")) == [
        "第 500 步 - loss=1.86 lr=2e-5",
        "Eval LOSS 1.70",
        "loss 变成 NaN",
    ]
    assert messages(get_logs(shared_http, run, q="100%")) == ["显存占用 100%"]
    assert messages(get_logs(shared_http, run, q="_")) == []
    assert messages(get_logs(shared_http, run, q="步")) == ["第 500 步 - loss=1.86 lr=2e-5"]
    combined = get_logs(shared_http, run, q="loss", level="ERROR", start_time=at(1))
    assert combined["total"] == 1 and messages(combined) == ["loss 变成 NaN"]
    assert get_logs(shared_http, run, q="Loss", page_size=1, page=2) | {"items": None} == {
        "page": 2,
        "page_size": 1,
        "total": 3,
        "items": None,
    }


def test_unicode_round_trip(shared_http, run):
    texts = [
        "第 500 步 - loss=1.86 lr=2e-5",
        "emoji 🚀🔥 完成",
        "עברית וعربي",
        "e\u0301 组合字符",
        "多行\n第二行\t制表",
        "引号 \"'\\ 反斜杠",
        "𠜎𠜱𡿺 扩展汉字",
    ]
    send_logs(shared_http, run, [{"timestamp": at(i), "message": text} for i, text in enumerate(texts)])

    assert messages(get_logs(shared_http, run)) == texts
    assert messages(get_logs(shared_http, run, q="🚀")) == ["emoji 🚀🔥 完成"]
    assert messages(get_logs(shared_http, run, q="𠜱")) == ["𠜎𠜱𡿺 扩展汉字"]


# Metrics


def send_metrics(http, run: dict, points: list[dict], batch_id: str | None = None) -> dict:
    response = http.post(url(run, "/metrics"), json={"batch_id": batch_id or uuid.uuid4().hex, "points": points})
    assert response.status_code == 200, response.text
    return response.json()


def point(name: str, step: int, value: float) -> dict:
    return {"name": name, "step": step, "value": value, "timestamp": at(step)}


def series(http, run: dict, **params) -> dict[str, dict]:
    response = http.get(url(run, "/metrics"), params=params)
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()["series"]}


def run_metrics(http, run: dict) -> dict:
    return http.get(url(run, "")).json()["metrics"]


def test_duplicate_metric_batches_store_once(shared_http, run):
    points = [point("loss", i, 2.0 - i / 10) for i in range(10)]

    assert send_metrics(shared_http, run, points, "m-1") == {"batch_id": "m-1", "accepted": 10, "duplicate": False}
    assert send_metrics(shared_http, run, points, "m-1") == {"batch_id": "m-1", "accepted": 0, "duplicate": True}

    loss = series(shared_http, run)["loss"]
    assert loss["total_points"] == 10
    assert len(loss["points"]) == 10


def test_run_metrics_hold_latest_value_by_step(shared_http, run):
    assert run_metrics(shared_http, run) == {}
    send_metrics(shared_http, run, [point("loss", 5, 1.5), point("loss", 3, 1.7), point("acc", 3, 0.4)])
    assert run_metrics(shared_http, run) == {"loss": 1.5, "acc": 0.4}

    send_metrics(shared_http, run, [point("loss", 20, 1.1)])
    assert run_metrics(shared_http, run) == {"loss": 1.1, "acc": 0.4}

    # A batch that arrives late (e.g. a retry) does not roll the latest value back.
    send_metrics(shared_http, run, [point("loss", 10, 1.3), point("acc", 10, 0.6)])
    assert run_metrics(shared_http, run) == {"loss": 1.1, "acc": 0.6}


@pytest.mark.parametrize("max_points", [1, 7, 10, 100, 999, 1000, 5000])
def test_downsampling_bounds_points_per_series(shared_http, run, max_points):
    values = {step: 2.0 + ((step * 37) % 101) / 100 for step in range(1000)}
    send_metrics(
        shared_http,
        run,
        [point("loss", step, value) for step, value in values.items()]
        + [point("lr", step, 1e-5) for step in range(0, 1000, 50)],
    )

    got = series(shared_http, run, max_points=max_points)

    loss = got["loss"]
    assert loss["total_points"] == 1000
    assert got["lr"]["total_points"] == 20
    assert 1 <= len(loss["points"]) <= max_points
    assert len(got["lr"]["points"]) <= max_points
    if max_points >= 1000:
        assert len(loss["points"]) == 1000
    steps = [p["step"] for p in loss["points"]]
    assert steps == sorted(steps) and steps[-1] == 999
    assert min(p["min"] for p in loss["points"]) == min(values.values())
    assert max(p["max"] for p in loss["points"]) == max(values.values())


def test_spike_stays_visible(shared_http, run):
    values = {step: 1.0 + step / 10_000 for step in range(2000)}
    values[1337] = 100.0
    values[222] = -50.0
    send_metrics(shared_http, run, [point("loss", step, value) for step, value in values.items()])

    buckets = series(shared_http, run, max_points=10)["loss"]["points"]

    assert len(buckets) <= 10
    spiked = [b for b in buckets if b["max"] == 100.0]
    assert len(spiked) == 1 and spiked[0]["last"] != 100.0 and spiked[0]["min"] < 2
    assert [b for b in buckets if b["max"] > 2] == spiked
    assert [b for b in buckets if b["min"] == -50.0] == [b for b in buckets if b["min"] < 1]


def test_last_is_the_value_at_the_largest_step_of_each_bucket(shared_http, run):
    steps = list(range(0, 3000, 3))
    random.Random(7).shuffle(steps)
    for start in range(0, len(steps), 250):  # out of order, in several batches
        send_metrics(shared_http, run, [point("loss", step, step * 0.5) for step in steps[start : start + 250]])

    buckets = series(shared_http, run, max_points=13)["loss"]["points"]

    assert len(buckets) <= 13
    previous = -3
    for bucket in buckets:
        assert bucket["last"] == bucket["step"] * 0.5 == bucket["max"]
        assert bucket["timestamp"] == at(bucket["step"]).replace("+00:00", "Z")
        assert bucket["min"] == (previous + 3) * 0.5
        previous = bucket["step"]
    assert previous == 2997


def test_single_point_and_huge_steps(shared_http, run):
    send_metrics(shared_http, run, [point("one", 7, 0.5)])
    send_metrics(
        shared_http,
        run,
        [
            {"name": "big", "step": step, "value": float(i), "timestamp": at(0)}
            for i, step in enumerate([0, 2**40, 2**62, 2**63 - 1])
        ],
    )

    got = series(shared_http, run, max_points=10_000)

    assert got["one"]["points"] == [
        {"step": 7, "min": 0.5, "max": 0.5, "last": 0.5, "timestamp": at(7).replace("+00:00", "Z")}
    ]
    assert [b["step"] for b in got["big"]["points"]][-1] == 2**63 - 1
    assert got["big"]["points"][-1]["last"] == 3.0
    assert len(series(shared_http, run, max_points=1)["big"]["points"]) == 1


def test_names_filter(shared_http, run):
    send_metrics(shared_http, run, [point(name, step, 1.0) for name in ("loss", "acc", "lr") for step in range(3)])

    assert sorted(series(shared_http, run)) == ["acc", "loss", "lr"]
    assert sorted(series(shared_http, run, names=["loss", "acc"])) == ["acc", "loss"]
    assert sorted(series(shared_http, run, names="loss,acc")) == ["acc", "loss"]
    assert sorted(series(shared_http, run, names=" loss , lr ")) == ["loss", "lr"]
    assert sorted(series(shared_http, run, names=["loss,lr", "acc"])) == ["acc", "loss", "lr"]
    assert sorted(series(shared_http, run, names="loss")) == ["loss"]
    assert series(shared_http, run, names="nope") == {}
    with Client(str(shared_http.base_url)) as sdk:
        assert sorted(s.name for s in sdk.get_metrics(run["project_id"], run["id"], names=["lr", "acc"]).series) == [
            "acc",
            "lr",
        ]


@pytest.mark.parametrize("max_points", [0, -1, 10_001, "多"])
def test_invalid_max_points(shared_http, run, max_points):
    response = shared_http.get(url(run, "/metrics"), params={"max_points": max_points})
    assert response.status_code == 422, response.text
    assert field_label("max_points") in response.json()["detail"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '"NaN"', '"inf"', "1e400"])
def test_non_finite_metric_values_are_rejected(shared_http, run, value):
    raw = (
        '{"batch_id": "bad", "points": [{"name": "loss", "step": 1, "value": 1.0, "timestamp": "2024-01-02T10:00:00Z"},'
        f' {{"name": "loss", "step": 2, "value": {value}, "timestamp": "2024-01-02T10:00:01Z"}}]}}'
    )

    response = shared_http.post(
        url(run, "/metrics"), content=raw.encode(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert field_label("points.1.value") in response.json()["detail"]
    assert series(shared_http, run) == {}
    assert run_metrics(shared_http, run) == {}
    assert send_metrics(shared_http, run, [point("loss", 1, 1.0)], "bad")["duplicate"] is False


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"step": -1}, "points.0.step"),
        ({"step": 2**63}, "points.0.step"),
        ({"step": 1.5}, "points.0.step"),
        ({"name": ""}, "points.0.name"),
        ({"value": "高"}, "points.0.value"),
        ({"timestamp": None}, "points.0.timestamp"),
        ({"unit": "s"}, "points.0.unit"),
    ],
)
def test_metric_batch_validation(shared_http, run, bad, field):
    response = shared_http.post(
        url(run, "/metrics"), json={"batch_id": "b", "points": [{**point("loss", 1, 1.0), **bad}]}
    )
    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]
    assert series(shared_http, run) == {}


def test_pages_by_line_number_match_pages_of_a_run_whose_batches_came_out_of_order(shared_http):
    """A run whose batches arrive in time order is paged by line numbers; one whose batches do not is paged by
    sorting. Every page and time window must come out the same, and equal to the sorted lines."""
    lines = make_lines(1_000, every=timedelta(milliseconds=500), text="行 {i}")
    for i in range(0, 1_000, 7):
        lines[i]["level"] = "WARNING"
    batches = [lines[i : i + 90] for i in range(0, 1_000, 90)]
    in_order, shuffled = (run_of(shared_http) for _ in range(2))
    for batch in batches:
        send_logs(shared_http, in_order, batch)
    for batch in random.Random(3).sample(batches, len(batches)):
        send_logs(shared_http, shuffled, batch)
    expected = [line["message"] for line in lines]

    cases = [
        {"page": 1},
        {"page": 7, "page_size": 33},
        {"page": 20},
        {"page": 21},
        {"page": 2, "page_size": 500},
        {"start_time": at(100)},
        {"end_time": at(100), "page": 2},
        {"start_time": at(37), "end_time": at(301), "page": 3, "page_size": 40},
        {"start_time": at(10_000)},
        {"start_time": at(-50), "end_time": at(0)},
    ]
    for params in cases:
        ordered, unordered = get_logs(shared_http, in_order, **params), get_logs(shared_http, shuffled, **params)
        assert ordered == unordered, params
    window = get_logs(shared_http, in_order, start_time=at(37), end_time=at(301), page_size=500)
    assert messages(window) == expected[74:574] and window["total"] == 528
    assert messages(get_logs(shared_http, in_order, page=7, page_size=33)) == expected[198:231]
    assert get_logs(shared_http, in_order, page=21)["items"] == [] and get_logs(shared_http, in_order)["total"] == 1_000
    assert messages(get_logs(shared_http, in_order, level="WARNING", page_size=500)) == expected[::7]


def run_of(http) -> dict:
    return new_run(http, new_project(http, name=unique("日志"), owner="小李")["id"], model="m", dataset="d")
