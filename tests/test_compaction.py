"""Store compaction on a real API process: deleted runs give their space back, every remaining row reads the same,
ingest running meanwhile loses nothing, only admins may compact, and a restarted API opens the compacted file."""

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pytest

from ltm import ApiError, Client
from ltm.models import LogBatch, LogLine, MetricBatch, MetricPoint
from ltm.store import Database, compaction
from ltm.store import ingest as ingest_store
from tests.conftest import wait_until
from tests.helpers import cli_token, ltm

RUNS, KEPT = 6, 2
LINES_PER_BATCH, BATCHES_PER_RUN = 10_000, 6
POINTS_PER_BATCH = 1_500
START = datetime(2024, 5, 1, tzinfo=timezone.utc)


def running_run(sdk: Client, project_id: str) -> str:
    run = sdk.create_run(project_id, model="llama", dataset="语料")
    sdk.report(project_id, run.id, status="运行中")
    return run.id


def log_batch(run_id: str, number: int, lines: int) -> LogBatch:
    first = START + timedelta(seconds=number)
    return LogBatch(
        batch_id=f"logs-{number}",
        lines=[
            LogLine(
                timestamp=first + timedelta(microseconds=i),
                level="WARNING" if i % 9 == 0 else "INFO",
                message=f"运行 {run_id} 批次 {number} 第 {i} 行 loss={1 / (i + 1):.6f}",
            )
            for i in range(lines)
        ],
    )


def metric_batch(number: int, points: int) -> MetricBatch:
    steps = range(number * points, (number + 1) * points)
    return MetricBatch(
        batch_id=f"metrics-{number}",
        points=[
            MetricPoint(name=name, step=step, value=step * 0.001 + len(name), timestamp=START + timedelta(seconds=step))
            for name in ("train_loss", "learning_rate")
            for step in steps
        ],
    )


def fill(sdk: Client, project_id: str, run_ids: list[str]) -> None:
    """Batches sent run after run in turn, as runs training at the same time do: every row group mixes runs."""
    for number in range(BATCHES_PER_RUN):
        for run_id in run_ids:
            sdk.send_logs(project_id, run_id, log_batch(run_id, number, LINES_PER_BATCH))
            sdk.send_metrics(project_id, run_id, metric_batch(number, POINTS_PER_BATCH))


def add_artifacts(sdk: Client, root: Path, project_id: str, run_id: str) -> None:
    folder = root / project_id / run_id / "step-000100.ckpt"
    folder.mkdir(parents=True)
    (folder / "state.bin").write_bytes(b"s" * 64)
    checkpoint = sdk.register_artifact(
        project_id, run_id, type="checkpoint", name=folder.name, path=str(folder), size_bytes=64, step=100
    )
    sdk.tag_artifact(project_id, run_id, checkpoint.id, "候选", notes="待评估")
    sdk.register_artifact(project_id, run_id, type="config", name="配置", path=str(folder.parent / "config.json"))


def all_logs(sdk: Client, project_id: str, run_id: str) -> list[dict]:
    lines, page = [], 1
    while True:
        found = sdk.get_logs(project_id, run_id, page=page, page_size=500)
        lines += [line.model_dump(mode="json") for line in found.items]
        if len(lines) >= found.total:
            return lines
        page += 1


def snapshot(sdk: Client, project_id: str, run_id: str) -> dict:
    """What the API shows of a run: the run, every log page, totals, filtered pages, metric series, artifacts."""
    return {
        "run": sdk.get_run(project_id, run_id).model_dump(mode="json"),
        "logs": all_logs(sdk, project_id, run_id),
        "warnings": sdk.get_logs(project_id, run_id, level="WARNING", page=3, page_size=100).model_dump(mode="json"),
        "search": sdk.get_logs(project_id, run_id, q="第 7 行", page_size=500).model_dump(mode="json"),
        "metrics": sdk.get_metrics(project_id, run_id, max_points=10_000).model_dump(mode="json"),
        "downsampled": sdk.get_metrics(project_id, run_id, max_points=50).model_dump(mode="json"),
        "artifacts": [a.model_dump(mode="json") for a in sdk.list_artifacts(project_id, run_id)],
    }


def store_files(home: Path) -> list[str]:
    return sorted(path.name for path in home.iterdir() if path.name.startswith("ltm.duckdb"))


def test_deleted_runs_give_their_space_back_and_every_remaining_row_reads_the_same(tmp_path, start_api):
    root, home = tmp_path / "artifacts", tmp_path / "home"
    api = start_api(home, LTM_ARTIFACT_ROOT=str(root))
    sdk = Client(api.url)
    project_id = sdk.create_project(name=f"压缩-{uuid.uuid4().hex[:6]}", owner="小李").id
    run_ids = [running_run(sdk, project_id) for _ in range(RUNS)]
    fill(sdk, project_id, run_ids)
    for run_id in run_ids:
        add_artifacts(sdk, root, project_id, run_id)
    kept, doomed = run_ids[:KEPT], run_ids[KEPT:]  # the kept runs go on training after the compaction
    for run_id in doomed:
        sdk.report(project_id, run_id, status="已完成")
        assert sdk.delete_run(project_id, run_id, dry_run=False).deleted is True
    before = {run_id: snapshot(sdk, project_id, run_id) for run_id in kept}

    result = sdk.compact()
    print(f"\ncompaction: {result.bytes_before} -> {result.bytes_after} bytes in {result.seconds} s")

    assert result.bytes_after < result.bytes_before / 2
    assert (home / "ltm.duckdb").stat().st_size == result.bytes_after
    assert store_files(home) in (["ltm.duckdb"], ["ltm.duckdb", "ltm.duckdb.wal"])  # the audit record comes after
    per_run = BATCHES_PER_RUN * LINES_PER_BATCH
    assert result.tables["logs"] == KEPT * per_run
    assert result.tables["metrics"] == KEPT * BATCHES_PER_RUN * POINTS_PER_BATCH * 2
    assert result.tables["runs"] == KEPT and result.tables["artifacts"] == KEPT * 2
    assert result.seconds >= 0
    assert {run_id: snapshot(sdk, project_id, run_id) for run_id in kept} == before

    sdk.send_logs(project_id, kept[0], log_batch(kept[0], 99, 10))
    assert sdk.get_logs(project_id, kept[0]).total == per_run + 10
    fresh = running_run(sdk, project_id)
    sdk.send_metrics(project_id, fresh, metric_batch(0, 10))
    assert sdk.get_metrics(project_id, fresh).series[0].total_points == 10

    api.stop()
    assert store_files(home) == ["ltm.duckdb"]
    restarted = start_api(home, LTM_ARTIFACT_ROOT=str(root))
    again = Client(restarted.url)
    assert again.get_logs(project_id, kept[0]).total == per_run + 10
    assert snapshot(again, project_id, kept[1]) == before[kept[1]]
    assert {run.id for run in again.list_runs(project_id)} == {*kept, fresh}

    done = ltm("compact", api_url=restarted.url)
    assert done.returncode == 0, done.stderr
    assert "已压缩存储" in done.stdout and "行数已核对" in done.stdout
    assert snapshot(again, project_id, kept[1]) == before[kept[1]]
    restarted.stop()
    with duckdb.connect(str(home / "ltm.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM audit_events WHERE action = '压缩存储'").fetchone()[0] == 2


class Sender(threading.Thread):
    """Keeps sending log or metric batches to one run, remembering each acknowledged batch and when."""

    def __init__(self, url: str, project_id: str, run_id: str, kind: str) -> None:
        super().__init__(daemon=True)
        self.client, self.label, self.kind = Client(url, timeout=120), (project_id, run_id), kind
        self.acknowledged: list[tuple[float, float, int]] = []
        self.errors: list[Exception] = []
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                if self.kind == "logs":
                    accepted = self.client.send_logs(*self.label, log_batch(self.label[1], number, 500)).accepted
                else:
                    accepted = self.client.send_metrics(*self.label, metric_batch(number, 100)).accepted
            except Exception as exc:  # any failure is a lost batch: the test reports it
                self.errors.append(exc)
                return
            self.acknowledged.append((sent, time.monotonic(), accepted))
            number += 1


def test_ingest_running_during_compaction_loses_no_acknowledged_batch(fresh_client, fresh_api):
    """A fresh API: it compacts the whole store while ingest runs, and only this test's data should be in it."""
    client = fresh_client
    project_id = client.create_project(name=f"并发压缩-{uuid.uuid4().hex[:6]}", owner="小李").id
    logged, measured, filler = (running_run(client, project_id) for _ in range(3))
    for number in range(5):
        client.send_logs(project_id, filler, log_batch(filler, number, LINES_PER_BATCH))
    senders = [
        Sender(fresh_api.url, project_id, logged, "logs"),
        Sender(fresh_api.url, project_id, measured, "metrics"),
    ]
    for sender in senders:
        sender.start()
    windows = []
    for _ in range(3):
        wait_until(
            lambda: all(len(s.acknowledged) >= 3 for s in senders) or any(s.errors for s in senders),
            message="batches before the compaction",
        )
        started = time.monotonic()
        result = client.compact()
        windows.append((started, time.monotonic()))
        assert sum(result.tables.values()) > 0
        assert client.get_logs(project_id, filler).total == 5 * LINES_PER_BATCH
    time.sleep(0.3)
    for sender in senders:
        sender.stop.set()
        sender.join(timeout=60)

    assert [s.errors for s in senders] == [[], []]
    overlapping = [
        ack for s in senders for ack in s.acknowledged for start, end in windows if ack[0] < end and ack[1] > start
    ]
    assert overlapping, "no batch was in flight during a compaction"
    logs, metrics = senders[0].acknowledged, senders[1].acknowledged
    stored = all_logs(client, project_id, logged)
    assert len(stored) == sum(accepted for *_, accepted in logs) == 500 * len(logs)
    expected = [
        line.model_dump(mode="json") for number in range(len(logs)) for line in log_batch(logged, number, 500).lines
    ]
    assert stored == expected
    series = client.get_metrics(project_id, measured).series
    assert [s.total_points for s in series] == [100 * len(metrics)] * 2
    assert [s.points[-1].step for s in series] == [100 * len(metrics) - 1] * 2


def test_only_admins_compact(tmp_path, start_api):
    home = tmp_path / "home"
    admin_token = cli_token(home, "管理员", "admin")
    api = start_api(home, LTM_AUTH="true")
    admin = Client(api.url, token=admin_token)
    member, viewer = (admin.create_token(name, role).token for name, role in [("小李", "member"), ("小王", "viewer")])
    for token in (member, viewer):
        with pytest.raises(ApiError) as refused:
            Client(api.url, token=token).compact()
        assert refused.value.status_code == 403 and "需要 admin 角色" in refused.value.detail
    assert httpx.post(api.url + "/admin/compact").status_code == 401
    assert httpx.post(api.url + "/admin/compact", headers={"Authorization": "Bearer ltm_wrong"}).status_code == 401

    denied = ltm("compact", api_url=api.url, token=member)
    assert denied.returncode == 2 and "压缩存储失败" in denied.stderr
    assert admin.compact().tables["tokens"] == 3
    assert ltm("compact", api_url=api.url, token=admin_token).returncode == 0
    api.stop()
    with duckdb.connect(str(home / "ltm.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT actor, count(*) FROM audit_events WHERE action = '压缩存储' GROUP BY actor"
        ).fetchall() == [("管理员", 2)]


# The store underneath: failures and the gate


def seeded_store(path: Path) -> Database:
    db = Database(path)
    stamps = pa.array([START.replace(tzinfo=None) + timedelta(seconds=i) for i in range(1000)], pa.timestamp("us"))
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO runs (id, project_id, name, status, progress, model, dataset, hyperparameters, resources, "
            "metrics, created_at, updated_at, start_step, current_step, project_version) "
            "SELECT 'run_' || i, 'proj_0', '运行', '运行中', 0, 'm', 'd', '{}', '{}', '{}', now(), now(), 0, 0, 1 "
            "FROM range(3) t(i)"
        )
    for run in range(3):
        lines = pa.table(
            {"timestamp": stamps, "level": ["INFO"] * 1000, "message": [f"第 {i} 行" for i in range(1000)]}
        )
        ingest_store.append_logs(db, f"run_{run}", "batch", lines)
    with db.transaction() as cur:
        cur.execute("DELETE FROM logs WHERE run_id <> 'run_0'")
    return db


def test_a_copy_that_does_not_match_leaves_the_store_untouched(tmp_path, monkeypatch):
    db = seeded_store(tmp_path / "ltm.duckdb")
    with db.cursor() as cur:
        cur.execute("CHECKPOINT")
    original = (tmp_path / "ltm.duckdb").read_bytes()
    copy_rows = compaction._copy_rows
    monkeypatch.setattr(
        compaction,
        "_copy_rows",
        lambda con, source, schema, table: None if table == "logs" else copy_rows(con, source, schema, table),
    )

    with pytest.raises(compaction.CompactionFailed, match="logs 的行数"):
        db.compact()
    assert (tmp_path / "ltm.duckdb").read_bytes() == original
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ltm.duckdb"]
    assert db.fetch_one("SELECT count(*) FROM logs")[0] == 1000

    monkeypatch.undo()
    seq = db.reserve_log_seq(1)
    assert db.compact()["tables"]["logs"] == 1000
    assert db.reserve_log_seq(1) == seq + 1
    db.close()


def test_compaction_waits_for_open_cursors_and_holds_new_ones_until_the_swap(tmp_path):
    db = seeded_store(tmp_path / "ltm.duckdb")
    holding, release = threading.Event(), threading.Event()
    finished: dict[str, object] = {}

    def hold_a_cursor() -> None:
        with db.cursor():
            holding.set()
            release.wait(10)
            finished["nested"] = db.fetch_one("SELECT count(*) FROM logs")[0]  # may nest while compaction waits

    def later(name: str, call) -> threading.Thread:
        thread = threading.Thread(target=lambda: finished.__setitem__(name, call()))
        thread.start()
        return thread

    holder = threading.Thread(target=hold_a_cursor)
    holder.start()
    holding.wait(10)
    compactor = later("compact", db.compact)
    wait_until(lambda: db._gate._waiting == 1, message="compaction waiting for the open cursor")
    reader = later("read", lambda: db.fetch_one("SELECT count(*) FROM logs")[0])
    time.sleep(0.2)
    assert finished == {}
    release.set()
    for thread in (holder, compactor, reader):
        thread.join(10)
    assert finished["nested"] == finished["read"] == 1000
    assert finished["compact"]["tables"]["logs"] == 1000
    db.close()
