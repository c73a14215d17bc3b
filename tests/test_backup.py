"""Backup while the real API serves writes, restore into a new home with the real CLI, and compare the two
stores through the SDK."""

import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from ltm import ApiError, Client
from ltm.models import LogBatch, LogLine, MetricBatch, MetricPoint
from tests.conftest import ROOT, ApiProcess, free_port, wait_until
from tests.helpers import ltm


def now() -> datetime:
    return datetime.now(timezone.utc)


def seed(sdk: Client, root: Path) -> str:
    """A project touching every table and every column added by a migration; returns its id."""
    project = sdk.create_project(
        name=f"备份-{uuid.uuid4().hex[:6]}",
        owner="小李",
        tags=["科研"],
        default_hyperparameters={"learning_rate": 3e-5},
        default_trainer="simulated",
    )
    sdk.update_project(project.id, description="第二版", tags=["科研", "第二阶段"])
    sdk.set_retention(project.id, 4)
    for number in range(2):
        run = sdk.create_run(project.id, model="llama", dataset="语料", hyperparameters={"num_epochs": number + 1})
        sdk.report(project.id, run.id, status="运行中", current_step=10, total_steps=20)
        stamp = now()
        sdk.send_logs(
            project.id,
            run.id,
            LogBatch(
                batch_id=f"logs-{run.id}",
                lines=[
                    LogLine(timestamp=stamp, level="WARNING" if i % 7 == 0 else "INFO", message=f"第 {i} 行日志")
                    for i in range(150)
                ],
            ),
        )
        sdk.send_metrics(
            project.id,
            run.id,
            MetricBatch(
                batch_id=f"metrics-{run.id}",
                points=[
                    MetricPoint(name=name, step=step, value=step * 0.5 + len(name), timestamp=stamp)
                    for name in ("train_loss", "learning_rate")
                    for step in range(1, 101)
                ],
            ),
        )
        for step in (10, 20):
            folder = root / project.id / run.id / f"step-{step}.ckpt"
            folder.mkdir(parents=True)
            (folder / "state.json").write_text(json.dumps({"step": step}))
            checkpoint = sdk.register_artifact(
                project.id, run.id, type="checkpoint", name=folder.name, path=str(folder), size_bytes=13, step=step
            )
        sdk.tag_artifact(project.id, run.id, checkpoint.id, "候选", notes="待复核")
        sdk.tag_artifact(project.id, run.id, checkpoint.id, "发布", notes="通过复核")
        sdk.register_artifact(
            project.id,
            run.id,
            type="config",
            name="运行配置",
            path=str(root / project.id / run.id / "config.json"),
            size_bytes=42,
        )
        sdk.report(project.id, run.id, status="已完成" if number else "失败", message=None if number else "显存不足")
    return project.id


class Writer(threading.Thread):
    """Keeps logging to a live run and reporting its progress, as a training flow does."""

    def __init__(self, url: str, project_id: str, run_id: str) -> None:
        super().__init__(daemon=True)
        self.client = Client(url)
        self.label = (project_id, run_id)
        self.batches = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.client.send_logs(
                *self.label,
                LogBatch(
                    batch_id=f"live-{self.batches}",
                    lines=[LogLine(timestamp=now(), message=f"批次 {self.batches} 第 {i} 行") for i in range(20)],
                ),
            )
            self.batches += 1
            self.client.report(*self.label, progress=min(self.batches / 1000, 1.0), current_step=self.batches)


def all_logs(sdk: Client, project_id: str, run_id: str) -> list:
    lines, page = [], 1
    while True:
        found = sdk.get_logs(project_id, run_id, page=page, page_size=500)
        lines += found.items
        if len(lines) >= found.total:
            return lines
        page += 1


def snapshot(sdk: Client, project_id: str, skip_run: str | None = None) -> dict:
    """Everything the SDK shows about a project, as plain JSON values."""
    runs = [run for run in sdk.list_runs(project_id) if run.id != skip_run]
    return {
        "project": sdk.get_project(project_id).model_dump(mode="json", exclude={"runs", "status"}),
        "versions": [v.model_dump(mode="json") for v in sdk.list_versions(project_id)],
        "retention": sdk.get_retention(project_id).model_dump(mode="json"),
        "runs": {
            run.id: {
                "run": sdk.get_run(project_id, run.id).model_dump(mode="json"),
                "logs": [line.model_dump(mode="json") for line in all_logs(sdk, project_id, run.id)],
                "metrics": sdk.get_metrics(project_id, run.id, max_points=10_000).model_dump(mode="json"),
                "artifacts": [a.model_dump(mode="json") for a in sdk.list_artifacts(project_id, run.id)],
            }
            for run in runs
        },
    }


def test_backup_while_the_api_serves_writes_then_restore_gives_identical_data(tmp_path):
    root = tmp_path / "artifacts"
    source = ApiProcess(tmp_path / "home", LTM_ARTIFACT_ROOT=str(root), LTM_BACKUP_ROOT=str(tmp_path)).start()
    sdk = Client(source.url)
    seeded = [seed(sdk, root) for _ in range(2)]
    live_project = seeded[0]
    live = sdk.create_run(live_project, model="llama", dataset="语料")
    sdk.report(live_project, live.id, status="运行中")
    writer = Writer(source.url, live_project, live.id)
    writer.start()
    wait_until(lambda: writer.batches >= 5, message="the writer to be under way")

    folder = tmp_path / "backups" / "第一次备份"
    before = writer.batches
    backup = ltm("backup", str(folder), api_url=source.url)
    after = writer.batches
    wait_until(lambda: writer.batches >= after + 5, message="writes after the backup")
    writer.stop.set()
    writer.join(timeout=30)
    assert backup.returncode == 0, backup.stderr
    assert "已备份到" in backup.stdout and str(folder) in backup.stdout
    manifest = json.loads((folder / "ltm-backup.json").read_text())
    assert manifest["schema_version"] == sdk.health().schema_version

    restored = ltm("restore", str(folder), "--home", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    assert "已恢复到" in restored.stdout
    copy = ApiProcess(tmp_path / "restored", LTM_ARTIFACT_ROOT=str(root)).start()
    restored_sdk = Client(copy.url)

    assert restored_sdk.health().schema_version == manifest["schema_version"]
    assert {p.id for p in restored_sdk.list_projects()} == {p.id for p in sdk.list_projects()}
    for project_id in seeded:
        assert snapshot(restored_sdk, project_id, skip_run=live.id) == snapshot(sdk, project_id, skip_run=live.id)
    live_source, live_copy = all_logs(sdk, live_project, live.id), all_logs(restored_sdk, live_project, live.id)
    assert before * 20 <= len(live_copy) <= (after + 1) * 20 < len(live_source)
    assert live_copy == live_source[: len(live_copy)]
    assert manifest["tables"]["logs"] == 4 * 150 + len(live_copy)
    # each project's second 发布 archives its first: 4 tags applied + 1 automatic 归档, per project
    assert manifest["tables"]["metrics"] == 4 * 200 and manifest["tables"]["artifact_tags"] == 10
    assert manifest["tables"]["retention_policies"] == 2
    source.stop()
    copy.stop()


def test_restore_refuses_an_existing_store_unless_forced_and_keeps_the_old_one(tmp_path):
    home = tmp_path / "home"
    api = ApiProcess(home, LTM_BACKUP_ROOT=str(tmp_path)).start()
    sdk = Client(api.url)
    kept = sdk.create_project(name="备份前的项目", owner="小李")
    folder = tmp_path / "backup"
    sdk.backup(folder)
    later = sdk.create_project(name="备份后的项目", owner="小李")

    in_use = ltm("restore", str(folder), "--home", str(home), "--force")
    assert in_use.returncode == 2 and "正在被其他进程使用" in in_use.stderr
    api.stop()
    original = (home / "ltm.duckdb").read_bytes()

    refused = ltm("restore", str(folder), "--home", str(home))
    assert refused.returncode == 2 and "已存在" in refused.stderr and "--force" in refused.stderr
    not_a_backup = ltm("restore", str(tmp_path), "--home", str(tmp_path / "elsewhere"), "--force")
    assert not_a_backup.returncode == 2 and "不是备份目录" in not_a_backup.stderr
    assert (home / "ltm.duckdb").read_bytes() == original
    assert not (tmp_path / "elsewhere" / "ltm.duckdb").exists()

    forced = ltm("restore", str(folder), "--home", str(home), "--force")
    assert forced.returncode == 0, forced.stderr
    aside = list(home.glob("ltm.duckdb.bak-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == original and str(aside[0]) in forced.stdout

    restored = ApiProcess(home).start()
    assert [p.id for p in Client(restored.url).list_projects()] == [kept.id]
    restored.stop()
    previous = tmp_path / "previous"
    previous.mkdir()
    aside[0].rename(previous / "ltm.duckdb")
    old = ApiProcess(previous).start()
    assert {p.id for p in Client(old.url).list_projects()} == {kept.id, later.id}
    old.stop()


def test_backup_into_a_non_empty_folder_or_a_relative_path_is_refused(fresh_api, tmp_path):
    """A fresh API: the backup it makes at the end must hold this test's one project only."""
    sdk = Client(fresh_api.url)
    sdk.create_project(name="拒绝覆盖", owner="小李")
    root = fresh_api.home / "backups"
    folder = root / "existing"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("别覆盖我")

    with pytest.raises(ApiError) as occupied:
        sdk.backup(folder)
    assert occupied.value.status_code == 409 and "不为空" in occupied.value.detail
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    with pytest.raises(ApiError) as a_file:
        sdk.backup(folder / "notes.txt")
    assert a_file.value.status_code == 409
    relative = httpx.post(fresh_api.url + "/admin/backup", json={"target": "backups/today"})
    assert relative.status_code == 422 and relative.json()["errors"][0]["field"] == "target"
    assert not (ROOT / "backups").exists()
    outside = httpx.post(fresh_api.url + "/admin/backup", json={"target": str(tmp_path / "elsewhere")})
    assert outside.status_code == 422 and "备份根目录" in outside.json()["detail"]
    assert not (tmp_path / "elsewhere").exists()

    cli = ltm("backup", str(folder), api_url=fresh_api.url)
    assert cli.returncode == 2 and "不为空" in cli.stderr
    unreachable = ltm("backup", str(tmp_path / "new"), api_url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "无法连接 API" in unreachable.stderr

    empty = root / "empty"
    empty.mkdir()
    answer = sdk.backup(empty)
    assert answer.folder == str(empty) and answer.tables["projects"] == 1
    assert answer.files == len(list(empty.iterdir())) and answer.bytes > 0
