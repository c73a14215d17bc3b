"""Integrity failures that once happened on main, replayed against a real API process (issue 12, items 11–13, 15).

Each test plays the race, the tampered file or the kill that broke the store and asserts the safe outcome: clean
answers, and nothing left behind that should not be there.
"""

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pytest

from ltm import arrow_batches
from ltm.limits import MAX_BATCH_ITEMS
from ltm.store import backup as backup_store
from tests.conftest import ROOT, ApiProcess, wait_until
from tests.helpers import ltm, new_project, new_run

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
US0 = arrow_batches.micros(T0)
BIG = MAX_BATCH_ITEMS
ARROW = {"Content-Type": arrow_batches.MEDIA_TYPE}
KILL_BATCHES = 40  # 2M log lines: compacting or backing them up lasts long enough to be killed midway
RUN_TABLES = ("logs", "log_runs", "metrics", "metric_blocks", "ingest_batches")


def run_url(run: dict) -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}"


def log_body(batch_id: str, lines: int, text: str = "第 {i} 行") -> dict:
    return {
        "batch_id": batch_id,
        "lines": [
            {"timestamp": (T0 + timedelta(milliseconds=i)).isoformat(), "message": text.format(i=i)}
            for i in range(lines)
        ],
    }


def metric_body(batch_id: str, first_step: int, points: int) -> dict:
    return {
        "batch_id": batch_id,
        "points": [
            {"name": "train_loss", "step": step, "value": 1 / (step + 1), "timestamp": T0.isoformat()}
            for step in range(first_step, first_step + points)
        ],
    }


def arrow_logs(batch_id: str, lines: int) -> bytes:
    table = arrow_batches.log_table(
        [US0 + i for i in range(lines)], ["INFO"] * lines, [f"批次 {batch_id} 第 {i} 行" for i in range(lines)]
    )
    return arrow_batches.encode(table, batch_id)


def arrow_points(batch_id: str, number: int, points: int) -> bytes:
    steps = range(number * points, (number + 1) * points)
    table = arrow_batches.metric_table(["train_loss"] * points, steps, [1 / (s + 1) for s in steps], [US0] * points)
    return arrow_batches.encode(table, batch_id)


def rows_of_run(db_path: Path, run_id: str) -> dict[str, int]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {
            table: con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]).fetchone()[0]
            for table in RUN_TABLES
        }


# Item 11: ingest racing a run deletion


class Ingester(threading.Thread):
    """Keeps posting the largest log and metric batches (Arrow, as the SDK sends them) to one run, recording every
    answer, until stopped: each insert is a long transaction, so one is nearly always open when the run goes."""

    def __init__(self, url: str, run: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.path = url, run_url(run)
        self.answers: list[httpx.Response] = []
        self.errors: list[httpx.HTTPError] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120, headers=ARROW) as http:
            number = 0
            while not self.stop.is_set():
                batch_id = uuid.uuid4().hex
                try:
                    self.answers.append(http.post(self.path + "/logs", content=arrow_logs(batch_id, BIG)))
                    self.answers.append(http.post(self.path + "/metrics", content=arrow_points(batch_id, number, BIG)))
                except httpx.HTTPError as exc:  # a dropped connection is a failed answer too
                    self.errors.append(exc)
                    return
                number += 1

    def count(self, status: int) -> int:
        return sum(answer.status_code == status for answer in self.answers)

    def done(self) -> bool:
        return self.count(404) >= 2 or bool(self.errors)


class HeldBack(threading.Thread):
    """One ingest request whose body stops halfway until released: the API looks the run up as soon as the
    request starts, and can only finish it after the test has deleted the run."""

    def __init__(self, url: str, path: str, body: bytes) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.body = url, path, body
        self.half_sent, self.release = threading.Event(), threading.Event()
        self.answer: httpx.Response | httpx.HTTPError | None = None

    def chunks(self):
        half = len(self.body) // 2
        yield self.body[:half]
        self.half_sent.set()
        self.release.wait(60)
        yield self.body[half:]

    def run(self) -> None:
        try:
            self.answer = httpx.post(self.url + self.path, content=self.chunks(), headers=ARROW, timeout=120)
        except httpx.HTTPError as exc:
            self.answer = exc


def test_ingest_racing_a_run_deletion_leaves_no_rows_and_answers_no_500(tmp_path, start_api):
    api = start_api(tmp_path / "home", LTM_ARTIFACT_ROOT=str(tmp_path / "artifacts"))
    with httpx.Client(base_url=api.url, timeout=60) as http:
        project_id = new_project(http)["id"]
        doomed, neighbour = new_run(http, project_id), new_run(http, project_id)
        for run in (doomed, neighbour):
            assert http.patch(run_url(run), json={"status": "运行中"}).status_code == 200
        ingesters = [Ingester(api.url, run) for run in (doomed,) * 4 + (neighbour,)]
        for ingester in ingesters:
            ingester.start()
        wait_until(lambda: all(i.count(200) or i.errors for i in ingesters), timeout=60, message="ingest under way")
        path = run_url(doomed)
        held = [HeldBack(api.url, path + "/logs", arrow_logs(f"held-{n}", 1000)) for n in range(3)] + [
            HeldBack(api.url, path + "/metrics", arrow_points(f"held-{n}", 1000 + n, 1000)) for n in range(3)
        ]
        for request in held:
            request.start()
        wait_until(lambda: all(request.half_sent.is_set() for request in held), message="requests under way")

        assert http.patch(path, json={"status": "已完成"}).status_code == 200
        deleted = http.delete(path, params={"dry_run": "false"})
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"] is True
        for request in held:
            request.release.set()
            request.join(timeout=60)
        wait_until(lambda: all(i.done() for i in ingesters[:-1]), timeout=60, message="ingest refused")
        for ingester in ingesters:
            ingester.stop.set()
            ingester.join(timeout=60)
        neighbour_stored = http.get(run_url(neighbour) + "/logs").json()["total"]
    api.stop()

    assert rows_of_run(api.home / "ltm.duckdb", doomed["id"]) == dict.fromkeys(RUN_TABLES, 0)
    assert [i.errors for i in ingesters] == [[]] * len(ingesters)
    held_back = [getattr(request.answer, "status_code", request.answer) for request in held]
    assert set(held_back) <= {404, 409} and 404 in held_back, held_back
    answers = [answer for ingester in ingesters for answer in ingester.answers] + [r.answer for r in held]
    assert {a.status_code for a in answers} <= {200, 404, 409}, [a.text for a in answers if a.status_code >= 500]
    assert all(doomed["id"] in answer.json()["detail"] for answer in answers if answer.status_code != 200)
    assert neighbour_stored == BIG * ingesters[-1].count(200) // 2


# Item 13: a reused batch id with other content


def test_a_reused_batch_id_with_other_content_is_refused_and_a_true_retry_stays_idempotent(shared_http):
    run = new_run(shared_http)
    path = run_url(run)
    lines = log_body("b-1", 3)
    points = metric_body("m-1", 0, 3)
    same_lines = arrow_batches.encode(
        arrow_batches.log_table([US0 + 1000 * i for i in range(3)], ["INFO"] * 3, [f"第 {i} 行" for i in range(3)]),
        "b-1",
    )
    same_points = arrow_batches.encode(
        arrow_batches.metric_table(["train_loss"] * 3, [0, 1, 2], [1 / (s + 1) for s in range(3)], [US0] * 3), "m-1"
    )
    other_lines = log_body("b-1", 3, text="改过的第 {i} 行")
    other_points = arrow_batches.encode(
        arrow_batches.metric_table(["train_loss"] * 3, [0, 1, 2], [9.0, 9.0, 9.0], [US0] * 3), "m-1"
    )

    assert shared_http.post(path + "/logs", json=lines).json()["duplicate"] is False
    assert shared_http.post(path + "/metrics", json=points).json()["duplicate"] is False
    for kind, retry in [("logs", lines), ("metrics", points)]:
        answer = shared_http.post(f"{path}/{kind}", json=retry)
        assert answer.status_code == 200 and answer.json()["duplicate"] is True
    for kind, batch_id, retry in [("logs", "b-1", same_lines), ("metrics", "m-1", same_points)]:
        answer = shared_http.post(f"{path}/{kind}", content=retry, headers=ARROW)
        assert answer.json() == {"batch_id": batch_id, "accepted": 0, "duplicate": True}

    refused = {
        "b-1": [
            shared_http.post(path + "/logs", json=other_lines),
            shared_http.post(path + "/logs", content=arrow_logs("b-1", 3), headers=ARROW),
        ],
        "m-1": [
            shared_http.post(path + "/metrics", json=metric_body("m-1", 0, 4)),
            shared_http.post(path + "/metrics", content=other_points, headers=ARROW),
        ],
    }
    for batch_id, answers in refused.items():
        assert [answer.status_code for answer in answers] == [409, 409]
        assert all(f"batch_id {batch_id} " in answer.json()["detail"] for answer in answers)
    page = shared_http.get(path + "/logs").json()
    assert [item["message"] for item in page["items"]] == [f"第 {i} 行" for i in range(3)]
    series = shared_http.get(path + "/metrics").json()["series"]
    assert [(s["name"], s["total_points"]) for s in series] == [("train_loss", 3)]
    assert shared_http.get(path).json()["metrics"] == {"train_loss": 1 / 3}


# Item 12: restore builds the schema from the migrations and loads only data


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory) -> tuple[Path, Path]:
    """A stopped store with a run's logs, metrics and a tagged checkpoint, and a backup of it: (store, folder)."""
    base = tmp_path_factory.mktemp("backed-up")
    api = ApiProcess(base / "home", LTM_BACKUP_ROOT=str(base / "backups")).start()
    with httpx.Client(base_url=api.url, timeout=60) as http:
        run = new_run(http)
        path = run_url(run)
        assert http.patch(path, json={"status": "运行中", "progress": 0.5}).status_code == 200
        assert http.post(path + "/logs", json=log_body("logs", 30)).status_code == 200
        assert http.post(path + "/metrics", json=metric_body("metrics", 0, 50)).status_code == 200
        checkpoint = http.post(
            path + "/artifacts",
            json={
                "type": "checkpoint",
                "name": "检查点",
                "step": 50,
                "path": f"s3://artifacts/{run['project_id']}/{run['id']}/ckpt.pt",
            },
        )
        assert checkpoint.status_code == 201, checkpoint.text
        assert http.post(f"{path}/artifacts/{checkpoint.json()['id']}/tag", json={"tag": "候选"}).status_code == 200
        folder = base / "backups" / "完整备份"
        assert http.post("/admin/backup", json={"target": str(folder)}).status_code == 201
    api.stop()
    return api.home / "ltm.duckdb", folder


def table_rows(db_path: Path) -> dict[str, list[tuple]]:
    """Every row of every table in a stable order, leaving out the audit record of the backup itself."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        rows = {table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables}
        rows["audit_events"] = con.execute(
            "SELECT * FROM audit_events WHERE action <> '备份存储' ORDER BY ALL"
        ).fetchall()
    return rows


def test_restore_runs_no_sql_from_the_backup_folder_and_still_gives_identical_data(backed_up, tmp_path):
    source, original = backed_up
    folder = tmp_path / "被篡改的备份"
    shutil.copytree(original, folder)
    written = {name: tmp_path / f"written-by-{name}.csv" for name in ("schema.sql", "load.sql")}
    for name, target in written.items():
        sql = (folder / name).read_text(encoding="utf-8")
        attack = f"COPY (SELECT 'pwned' AS x) TO '{target}' (FORMAT CSV);\n"
        (folder / name).write_text(attack + sql + attack, encoding="utf-8")

    restored = ltm("restore", str(folder), "--home", str(tmp_path / "restored"))

    assert restored.returncode == 0, restored.stderr
    assert [target for target in written.values() if target.exists()] == []
    assert table_rows(tmp_path / "restored" / "ltm.duckdb") == table_rows(source)


def test_a_manifest_that_does_not_match_the_schema_or_the_data_is_refused(backed_up, tmp_path):
    source, original = backed_up
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(source, home / "ltm.duckdb")
    kept = (home / "ltm.duckdb").read_bytes()
    tamperings = {
        "evil_table": lambda manifest: manifest["tables"].update(evil_table=0),
        "logs": lambda manifest: manifest["tables"].update(logs=manifest["tables"]["logs"] + 1),
        "metrics": lambda manifest: manifest["tables"].pop("metrics"),
        "结构版本为 999": lambda manifest: manifest.update(schema_version=999),
    }
    for named, tamper in tamperings.items():
        folder = tmp_path / f"backup-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(original, folder)
        manifest = json.loads((folder / backup_store.MANIFEST).read_text(encoding="utf-8"))
        tamper(manifest)
        (folder / backup_store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")

        refused = ltm("restore", str(folder), "--home", str(home), "--force")

        assert refused.returncode == 2, (named, refused.stdout)
        assert named in refused.stderr and "未做任何修改" in refused.stderr, (named, refused.stderr)
        assert sorted(path.name for path in home.iterdir()) == ["ltm.duckdb"]
        assert (home / "ltm.duckdb").read_bytes() == kept


# Item 15: what a SIGKILL leaves beside the store is gone at the next start


def big_store(api: ApiProcess) -> tuple[dict, int]:
    """A run with enough log lines that compacting or backing up the store takes a while; (run, lines)."""
    with httpx.Client(base_url=api.url, timeout=120) as http:
        run = new_run(http)
        for number in range(KILL_BATCHES):
            stored = http.post(run_url(run) + "/logs", content=arrow_logs(f"big-{number}", BIG), headers=ARROW)
            assert stored.status_code == 200, stored.text
    return run, KILL_BATCHES * BIG


def posting_in_background(url: str, **fields) -> threading.Thread:
    """A request that the test kills the API under: it gets no answer."""

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, timeout=300, **fields)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def log_total(api: ApiProcess, run: dict) -> int:
    return httpx.get(api.url + run_url(run) + "/logs", timeout=60).json()["total"]


def test_a_compaction_killed_midway_leaves_no_staging_file_after_a_restart(tmp_path, start_api):
    home = tmp_path / "home"
    api = start_api(home)
    run, lines = big_store(api)
    staging = home / "ltm.duckdb.compacting"
    compacting = posting_in_background(api.url + "/admin/compact")
    wait_until(staging.exists, timeout=60, message="the compaction to write its copy")
    api.stop(signal.SIGKILL)
    compacting.join(timeout=60)
    assert staging.exists()

    again = start_api(home)
    assert sorted(path.name for path in home.iterdir() if ".compacting" in path.name) == []
    assert log_total(again, run) == lines


def test_a_backup_or_restore_killed_midway_leaves_nothing_behind_once_run_again(tmp_path, start_api):
    home, root = tmp_path / "home", tmp_path / "backups"
    api = start_api(home, LTM_BACKUP_ROOT=str(root))
    run, lines = big_store(api)
    target = root / "夜间备份"
    backing_up = posting_in_background(api.url + "/admin/backup", json={"target": str(target)})
    wait_until(lambda: any(root.rglob("*.parquet")), timeout=60, message="the backup to write its first file")
    api.stop(signal.SIGKILL)
    backing_up.join(timeout=60)
    assert not any(root.rglob(backup_store.MANIFEST)), "the backup finished before it was killed"

    again = start_api(home, LTM_BACKUP_ROOT=str(root))
    assert list(root.iterdir()) == []
    assert log_total(again, run) == lines
    assert httpx.post(again.url + "/admin/backup", json={"target": str(target)}, timeout=300).status_code == 201
    assert (target / backup_store.MANIFEST).is_file()

    restored = tmp_path / "restored"
    command = [sys.executable, "-m", "ltm.cli", "restore", str(target), "--home", str(restored)]
    killed = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: any(restored.glob("ltm.duckdb.restoring-*")), timeout=60, message="the restore to begin")
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    assert not (restored / "ltm.duckdb").exists()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in restored.iterdir()) == ["ltm.duckdb"]
