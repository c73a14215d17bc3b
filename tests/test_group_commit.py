"""Group commit: concurrent ingest shares store transactions, a full queue answers 503 with Retry-After that the
SDK's reporter honours, and an API killed mid-group keeps every batch it acknowledged, exactly once."""

import asyncio
import math
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import httpx
import pyarrow as pa
import pytest

from ltm import Client, arrow_batches
from ltm.api import group_commit, row_checks
from ltm.api.group_commit import GroupCommit
from ltm.reporter import RunReporter
from ltm.store import Database, ingest
from tests.conftest import ApiProcess, wait_until

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LINES = 20


def live_runs(client: Client, count: int) -> tuple[str, list[str]]:
    project = client.create_project(name=f"组提交-{uuid.uuid4().hex[:8]}", owner="测试")
    runs = [client.create_run(project.id, model="m", dataset="d") for _ in range(count)]
    for run in runs:
        client.report(project.id, run.id, status="运行中")
    return project.id, [run.id for run in runs]


def log_batch(batch_id: str, first: int = 0) -> dict:
    lines = [
        {"timestamp": (T0 + timedelta(seconds=first + i)).isoformat(), "message": f"第 {first + i} 行"}
        for i in range(LINES)
    ]
    return {"batch_id": batch_id, "lines": lines}


def stored_lines(http: httpx.Client, project_id: str, run_id: str) -> int:
    return http.get(f"/projects/{project_id}/runs/{run_id}/logs", params={"page_size": 1}).json()["total"]


def test_concurrent_batches_share_commits_and_each_is_stored_once(fresh_api):
    client = Client(fresh_api.url)
    project_id, run_ids = live_runs(client, 8)
    before = client.health().ingest
    batches = [(run_id, f"b{i}") for run_id in run_ids for i in range(12)]

    def send(item: tuple[str, str]) -> httpx.Response:
        run_id, batch_id = item
        with httpx.Client(base_url=fresh_api.url, timeout=60) as http:
            return http.post(f"/projects/{project_id}/runs/{run_id}/logs", json=log_batch(batch_id))

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(send, batches + batches[:16]))  # the first 16 twice: retried batches
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
    assert sum(a.json()["accepted"] for a in answers) == len(batches) * LINES
    assert sum(a.json()["duplicate"] for a in answers) == 16
    after = client.health().ingest
    committed = after.committed_batches - before.committed_batches
    assert committed == len(batches) + 16
    assert after.commits - before.commits < committed, "concurrent batches never shared a commit"
    window, earlier = after.last_minute, before.last_minute
    assert (window.batches - earlier.batches, window.commits - earlier.commits) == (
        committed,
        after.commits - before.commits,
    )
    assert 0 < window.commit_ms_p50 <= window.commit_ms_p99
    with httpx.Client(base_url=fresh_api.url) as http:
        assert {stored_lines(http, project_id, run_id) for run_id in run_ids} == {12 * LINES}


def test_a_full_queue_answers_503_with_retry_after_and_the_reporter_waits_and_resends(tmp_path):
    api = ApiProcess(tmp_path / "home", LTM_INGEST_QUEUE_ROWS="1").start()
    try:
        client = Client(api.url)
        project_id, (run_id,) = live_runs(client, 1)

        def send(i: int) -> httpx.Response:
            with httpx.Client(base_url=api.url, timeout=60) as http:
                return http.post(f"/projects/{project_id}/runs/{run_id}/logs", json=log_batch(f"burst-{i}", i))

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, range(48)))
        busy = [a for a in answers if a.status_code == 503]
        assert busy, "a queue of one row never refused a concurrent batch"
        assert all(a.headers["retry-after"] == "1" and "batch_id 重试" in a.json()["detail"] for a in busy)
        assert {a.status_code for a in answers} == {200, 503}

        stored = sum(a.status_code == 200 for a in answers) * LINES
        for _ in range(5):  # until a round of simultaneous flushes meets a full queue
            timelines = flush_together(api.url, project_id, run_id, reporters=6, lines=400)
            stored += 6 * 400
            refused = [
                (reporter, i) for reporter, events in enumerate(timelines) for i, e in enumerate(events) if e[1] == 503
            ]
            if refused:
                break
        assert refused, "simultaneous reporters never met a full queue"
        for reporter, i in refused:
            answered_at = timelines[reporter][i][2]
            next_sent = timelines[reporter][i + 1][0]
            assert next_sent - answered_at >= 0.9, "the reporter resent before Retry-After passed"
        with httpx.Client(base_url=api.url) as http:
            assert stored_lines(http, project_id, run_id) == stored
    finally:
        api.stop()


def flush_together(url: str, project_id: str, run_id: str, reporters: int, lines: int) -> list[list[tuple]]:
    """`reporters` RunReporters, each with `lines` buffered, closed at the same moment; for each, its requests as
    (sent, status, answered) in order."""
    timelines: list[list[tuple]] = [[] for _ in range(reporters)]

    def client_for(events: list) -> Client:
        def sent(request: httpx.Request) -> None:
            request.extensions["sent"] = time.monotonic()

        def answered(response: httpx.Response) -> None:
            events.append((response.request.extensions["sent"], response.status_code, time.monotonic()))

        hooks = {"request": [sent], "response": [answered]}
        return Client(http=httpx.Client(base_url=url, timeout=60, event_hooks=hooks))

    started = [RunReporter(client_for(events), project_id, run_id, interval=3600) for events in timelines]
    for reporter in started:
        for i in range(lines):
            reporter.log(f"第 {i} 行", timestamp=T0 + timedelta(seconds=i))
    closing = [threading.Thread(target=reporter.close, kwargs={"timeout": 120}) for reporter in started]
    for thread in closing:
        thread.start()
    for thread in closing:
        thread.join()
    return timelines


def report(batch_id: str, first: int) -> dict:
    """A reporter's flush: the log batch, a metric point per line, and progress."""
    points = [
        {"name": "loss", "step": first + i, "value": 1.0 / (1 + first + i), "timestamp": T0.isoformat()}
        for i in range(LINES)
    ]
    return {
        "logs": log_batch(batch_id, first),
        "metrics": {"batch_id": batch_id, "points": points},
        "progress": {"current_step": first + LINES},
    }


def post(http: httpx.Client, project_id: str, run_id: str, kind: str, batch_id: str, first: int) -> httpx.Response:
    body = log_batch(batch_id, first) if kind == "logs" else report(batch_id, first)
    return http.post(f"/projects/{project_id}/runs/{run_id}/{kind}", json=body)


def was_stored(kind: str, answer: dict) -> bool:
    """Whether a resent batch or report had been stored before; a report's parts must agree."""
    if kind == "logs":
        return answer["duplicate"]
    assert answer["logs"]["duplicate"] == answer["metrics"]["duplicate"], f"a report stored in part: {answer}"
    return answer["logs"]["duplicate"]


@pytest.mark.parametrize("kind", ["logs", "report"])
def test_api_killed_mid_group_keeps_every_acknowledged_batch_exactly_once(tmp_path, kind):
    api = ApiProcess(tmp_path / "home").start()
    client = Client(api.url)
    project_id, run_ids = live_runs(client, 6)
    sent: list[tuple[str, str, int]] = []
    acknowledged: set[tuple[str, str]] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def keep_sending(worker: int) -> None:
        with httpx.Client(base_url=api.url, timeout=10) as http:
            for i in range(10_000):
                if stop.is_set():
                    return
                run_id = run_ids[(worker + i) % len(run_ids)]
                batch_id, first = f"w{worker}-{i}", i * LINES
                with lock:
                    sent.append((run_id, batch_id, first))
                try:
                    answer = post(http, project_id, run_id, kind, batch_id, first)
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    with lock:
                        acknowledged.add((run_id, batch_id))

    workers = [threading.Thread(target=keep_sending, args=(w,)) for w in range(12)]
    for worker in workers:
        worker.start()
    wait_until(lambda: len(acknowledged) >= 150, timeout=120, message="batches to be acknowledged")
    assert api.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    api.start()
    with httpx.Client(base_url=api.url, timeout=30) as http:
        resent = {}
        for run_id, batch_id, first in sent:
            answer = post(http, project_id, run_id, kind, batch_id, first)
            assert answer.status_code == 200, answer.text
            resent[(run_id, batch_id)] = was_stored(kind, answer.json())
        lost = [key for key in acknowledged if not resent[key]]
        assert not lost, f"acknowledged batches missing after SIGKILL: {lost[:5]}"
        for run_id in run_ids:
            batches = sum(1 for r, _, _ in sent if r == run_id)
            assert stored_lines(http, project_id, run_id) == batches * LINES
            if kind == "report":
                run = http.get(f"/projects/{project_id}/runs/{run_id}").json()
                series = http.get(f"/projects/{project_id}/runs/{run_id}/metrics").json()["series"]
                assert [s["total_points"] for s in series] == [batches * LINES]
                last = [first for r, _, first in sent if r == run_id][-1]  # the resent reports' progress counts
                assert run["current_step"] == last + LINES
    api.stop()


def test_the_duplicate_check_index_survives_compaction(tmp_path):
    db = Database(tmp_path / "ltm.duckdb")
    try:
        indexes = "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'ingest_batches'"
        assert db.fetch_all(indexes) == [("ingest_batches_claim",)]
        db.compact()
        assert db.fetch_all(indexes) == [("ingest_batches_claim",)]
        with db.cursor() as cur:
            cur.execute(
                "INSERT INTO ingest_batches SELECT 'run_' || i, 'logs', 'b', 1, now(), 'd', 'logs:run_' || i || ':b' "
                "FROM range(5000) t(i)"
            )
        plan = db.fetch_all("EXPLAIN ANALYZE SELECT digest FROM ingest_batches WHERE claim = 'logs:run_7:b'")
        assert "Type: Index Scan" in plan[0][1]
    finally:
        db.close()


@pytest.mark.parametrize("keys", [1, 100, 3000])
def test_a_groups_lookups_go_through_the_indexes_whatever_the_stores_history(tmp_path, keys):
    """A scan would make every group's duplicate check grow with every batch ever stored."""
    db = Database(tmp_path / "ltm.duckdb")
    try:
        with db.cursor() as cur:
            cur.execute(
                "INSERT INTO ingest_batches SELECT 'run_' || i, 'logs', 'b', 1, now(), 'd', 'logs:run_' || i || ':b' "
                "FROM range(20000) t(i)"
            )
            cur.execute("INSERT INTO log_runs SELECT 'run_' || i, 1, now(), true FROM range(20000) t(i)")
            for select, column, key in [
                ("SELECT claim, digest FROM ingest_batches WHERE", "claim", "logs:run_{}:b"),
                ("SELECT run_id, lines FROM log_runs WHERE", "run_id", "run_{}"),
            ]:
                wanted = {key.format(i * 7) for i in range(keys)}
                for _, plan in ingest._by_key(cur, f"EXPLAIN ANALYZE {select}", column, wanted):
                    assert "Index Scan" in plan and "Sequential Scan" not in plan, plan
    finally:
        db.close()


class OneRun(NamedTuple):
    writer: GroupCommit
    db: Database
    project_id: str
    run_id: str


@pytest.fixture
def one_run(tmp_path):
    """A group-commit writer of the test's own on the store file of an API that made one live run, then stopped."""
    api = ApiProcess(tmp_path / "home").start()
    project_id, (run_id,) = live_runs(Client(api.url), 1)
    api.stop()
    db = Database(tmp_path / "home" / "ltm.duckdb")
    writer = GroupCommit(db, frozenset())
    yield OneRun(writer, db, project_id, run_id)
    writer.stop()
    db.close()


def test_a_bad_row_refuses_only_the_items_holding_it_and_the_rest_of_its_group_commits(one_run):
    writer, db, project_id, run_id = one_run
    good_lines = ingest.Batch(ingest.LOGS, run_id, "good-lines", lines_table(["INFO", "WARNING"]), project_id)
    bad_lines = ingest.Batch(ingest.LOGS, run_id, "bad-lines", lines_table(["INFO", "LOUD"]), project_id)
    report = ingest.Report(
        run_id,
        project_id,
        [
            ingest.Batch(ingest.LOGS, run_id, "report-lines", lines_table(["INFO"]), project_id),
            ingest.Batch(ingest.METRICS, run_id, "report-points", points_table([1.0, math.nan]), project_id),
        ],
        {"current_step": 7},
    )
    good_points = ingest.Batch(ingest.METRICS, run_id, "good-points", points_table([0.5]), project_id)

    async def one_group() -> list:
        with writer._changed:  # the writer waits for this lock, so all four are taken as one group
            futures = [writer.submit(item) for item in (good_lines, bad_lines, report, good_points)]
        return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 30)

    lines, refused_lines, refused_report, points = asyncio.run(one_group())
    assert (lines.accepted, points.accepted) == (2, 1)
    levels = "DEBUG、INFO、WARNING、ERROR、CRITICAL"
    assert (refused_lines.status_code, refused_lines.detail) == (422, f"level：第 1 行必须是 {levels} 之一")
    assert (refused_report.status_code, refused_report.detail) == (422, "value：第 1 行必须是有限数值")
    assert writer.groups == 1
    assert db.fetch_one("SELECT count(*) FROM logs WHERE run_id = ?", [run_id]) == (2,)
    assert db.fetch_one("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]) == (1,)
    assert db.fetch_one("SELECT current_step FROM runs WHERE id = ?", [run_id]) != (7,)


def test_the_last_minute_reports_each_commits_duration_and_how_long_its_oldest_batch_waited(one_run, monkeypatch):
    writer, _, project_id, run_id = one_run
    assert writer.window()["commits"] == 0 and writer.window()["commit_ms_p50"] is None

    async def held_group() -> list:
        with writer._changed:  # the writer cannot take the batches while this is held
            futures = [
                writer.submit(ingest.Batch(ingest.LOGS, run_id, f"held-{i}", lines_table(["INFO"]), project_id))
                for i in range(3)
            ]
            time.sleep(0.3)  # the wait being measured
        return await asyncio.wait_for(asyncio.gather(*futures), 30)

    held = time.monotonic()
    asyncio.run(held_group())
    elapsed = (time.monotonic() - held) * 1000
    window = writer.window()
    assert (window["commits"], window["batches"]) == (1, 3)
    assert 300 <= window["wait_ms_p50"] <= elapsed
    assert 0 < window["commit_ms_p50"] <= elapsed - window["wait_ms_p50"]

    monkeypatch.setattr(group_commit, "WINDOW_SECONDS", 0.2)
    wait_until(lambda: writer.window()["commits"] == 0, timeout=5, message="the group leaves the window")
    assert writer.window()["wait_ms_p99"] is None


def lines_table(levels: list[str]) -> pa.Table:
    times = [arrow_batches.micros(T0) + i for i in range(len(levels))]
    table = arrow_batches.log_table(times, levels, [f"行 {i}" for i in range(len(levels))])
    return table.cast(pa.schema([("timestamp", pa.timestamp("us")), ("level", pa.string()), ("message", pa.string())]))


def points_table(values: list[float]) -> pa.Table:
    count = len(values)
    times = [arrow_batches.micros(T0) + i for i in range(count)]
    table = arrow_batches.metric_table(["loss"] * count, list(range(count)), values, times)
    return table.set_column(3, "timestamp", table["timestamp"].cast(pa.timestamp("us")))


def test_rows_whose_tables_do_not_stack_are_checked_one_batch_at_a_time():
    good = ingest.Batch(ingest.LOGS, "run", "good", lines_table(["INFO"]))
    strict = lines_table(["LOUD"])
    strict = strict.cast(pa.schema([field.with_nullable(False) for field in strict.schema]))  # concat refuses the mix
    refusals = row_checks.refused([good, ingest.Batch(ingest.LOGS, "run", "strict", strict)])
    assert list(refusals) == [1]
    assert refusals[1].detail.startswith("level：第 0 行必须是")
