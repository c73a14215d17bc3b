"""Runs: status moves reported by flows, cancel, resume, lookups."""

import threading
import time
import uuid
from datetime import datetime

import httpx
import pytest

from ltm.vocabulary import field_label
from tests.conftest import ApiProcess, wait_until
from tests.helpers import new_project, new_run


def t(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def url(run: dict, suffix: str = "") -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}{suffix}"


def patch(http, run: dict, **body) -> httpx.Response:
    return http.patch(url(run), json=body)


def checkpoint(http, run: dict, step: int | None = 2000, type: str = "checkpoint") -> dict:
    response = http.post(
        url(run, "/artifacts"),
        json={
            "type": type,
            "name": "第 2000 步检查点",
            "step": step,
            "size_bytes": 123,
            "path": f"s3://artifacts/{run['project_id']}/{run['id']}/ckpt_{uuid.uuid4().hex[:6]}.pt",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


# Status moves


def test_valid_chain_stamps_times_and_progress(shared_http):
    run = new_run(shared_http)
    assert run["started_at"] is None and run["finished_at"] is None

    running = patch(shared_http, run, status="运行中", progress=0.3, current_step=30, total_steps=100)
    assert running.status_code == 200, running.text
    running = running.json()
    assert running["status"] == "运行中"
    assert running["progress"] == 0.3
    assert running["current_step"] == 30 and running["total_steps"] == 100
    started = t(running["started_at"])
    assert started >= t(run["created_at"])
    assert running["finished_at"] is None

    again = patch(shared_http, run, status="运行中", progress=0.5).json()
    assert t(again["started_at"]) == started
    assert again["progress"] == 0.5

    done = patch(shared_http, run, status="已完成").json()
    assert done["status"] == "已完成"
    assert done["progress"] == 1.0
    assert t(done["started_at"]) == started
    assert t(done["finished_at"]) >= started
    assert done["cancelled_at"] is None
    assert shared_http.get(url(run)).json()["status"] == "已完成"


@pytest.mark.parametrize("terminal", ["已完成", "已取消", "失败"])
@pytest.mark.parametrize("target", ["排队中", "运行中", "取消中", "已完成", "已取消", "失败"])
def test_no_move_out_of_terminal(shared_http, terminal, target):
    run = new_run(shared_http)
    if terminal == "已完成":
        assert patch(shared_http, run, status="运行中").status_code == 200
    ended = patch(shared_http, run, status=terminal)
    assert ended.status_code == 200, ended.text
    ended = ended.json()

    response = patch(shared_http, run, status=target, progress=0.25, message="迟到的上报")

    assert response.status_code == 409, response.text
    assert terminal in response.json()["detail"]
    after = shared_http.get(url(run)).json()
    assert after["status"] == terminal
    assert after["progress"] == ended["progress"]
    assert after["message"] is None
    assert after["finished_at"] == ended["finished_at"]


def test_progress_report_on_terminal_run_conflicts(shared_http):
    run = new_run(shared_http)
    patch(shared_http, run, status="失败", message="显存不足")

    response = patch(shared_http, run, progress=0.9)

    assert response.status_code == 409
    assert shared_http.get(url(run)).json()["progress"] == 0.0


def test_queued_cannot_go_straight_to_completed(shared_http):
    run = new_run(shared_http)
    response = patch(shared_http, run, status="已完成")
    assert response.status_code == 409
    assert "排队中" in response.json()["detail"]
    assert shared_http.get(url(run)).json()["status"] == "排队中"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "跑着"}, "status"),
        ({"status": "running"}, "status"),
        ({"progress": 1.01}, "progress"),
        ({"progress": -0.01}, "progress"),
        ({"progress": "很多"}, "progress"),
        ({"gpu_utilization": 1.5}, "gpu_utilization"),
        ({"gpu_utilization": -1}, "gpu_utilization"),
        ({"current_step": -1}, "current_step"),
        ({"current_step": 2**63}, "current_step"),
        ({"total_steps": 2**64}, "total_steps"),
        ({"name": "改名"}, "name"),
        ({"metrics": {"loss": 1}}, "metrics"),
    ],
)
def test_report_rejects_invalid_values(shared_http, body, field):
    run = new_run(shared_http)

    response = patch(shared_http, run, **body)

    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]
    assert shared_http.get(url(run)).json()["updated_at"] == run["updated_at"]


@pytest.mark.parametrize("raw", ['{"progress": NaN}', '{"gpu_utilization": Infinity}', '{"progress": -Infinity}'])
def test_report_rejects_non_finite_numbers(shared_http, raw):
    run = new_run(shared_http)
    response = shared_http.patch(url(run), content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


def test_bounds_are_inclusive(shared_http):
    run = new_run(shared_http)
    assert patch(shared_http, run, progress=0.0, gpu_utilization=0.0).status_code == 200
    body = patch(shared_http, run, progress=1.0, gpu_utilization=1.0).json()
    assert body["progress"] == 1.0 and body["gpu_utilization"] == 1.0


# Cancel


def test_cancel_queued_run_at_once(shared_http):
    run = new_run(shared_http)

    started = time.monotonic()
    response = shared_http.post(url(run, "/cancel"))

    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 0.9  # the 1 s cancel wait is not spent on a queued run
    body = response.json()
    assert body["status"] == "已取消"
    assert t(body["cancelled_at"]) >= t(run["created_at"])
    assert body["finished_at"] == body["cancelled_at"]
    assert shared_http.get(url(run)).json()["status"] == "已取消"


@pytest.mark.parametrize("terminal", ["已完成", "已取消", "失败"])
def test_cancel_terminal_run_conflicts(shared_http, terminal):
    run = new_run(shared_http)
    if terminal == "已完成":
        patch(shared_http, run, status="运行中")
    patch(shared_http, run, status=terminal)

    response = shared_http.post(url(run, "/cancel"))

    assert response.status_code == 409, response.text
    assert terminal in response.json()["detail"]
    assert shared_http.get(url(run)).json()["status"] == terminal


def test_cancel_running_run_without_orchestrator_answers_202(shared_http):
    run = new_run(shared_http)
    patch(shared_http, run, status="运行中", progress=0.4)

    response = shared_http.post(url(run, "/cancel"))

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "取消中"
    assert body["progress"] == 0.4
    assert body["cancelled_at"] is None
    assert isinstance(body["artifacts"], list)

    # The flow then saves its checkpoint and confirms.
    confirmed = patch(shared_http, run, status="已取消")
    assert confirmed.status_code == 200
    assert confirmed.json()["cancelled_at"] is not None


def test_cancel_returns_200_when_flow_confirms_during_wait(tmp_path):
    api = ApiProcess(tmp_path / "home", LTM_CANCEL_WAIT_SECONDS="30").start()
    try:
        with httpx.Client(base_url=api.url, timeout=60) as own_http:
            run = new_run(own_http)
            patch(own_http, run, status="运行中")
            result: dict = {}

            def cancel():
                started = time.monotonic()
                result["response"] = own_http.post(url(run, "/cancel"))
                result["seconds"] = time.monotonic() - started

            thread = threading.Thread(target=cancel)
            thread.start()
            wait_until(lambda: own_http.get(url(run)).json()["status"] == "取消中", message="取消中")
            assert patch(own_http, run, status="已取消").status_code == 200
            thread.join(timeout=40)

            assert result["response"].status_code == 200, result["response"].text
            assert result["response"].json()["status"] == "已取消"
            assert result["seconds"] < 20
    finally:
        api.stop()


# Resume


def test_resume_defaults_clone_the_source_run(shared_http):
    project = new_project(shared_http, default_hyperparameters={"warmup_steps": 10})
    source = new_run(
        shared_http,
        project["id"],
        model="llama-2-13b",
        dataset="中文语料",
        hyperparameters={"learning_rate": 2e-5, "batch_size": 32},
        resources={"gpu_type": "A100", "gpu_count": 4, "node": "gpu-01"},
    )
    ckpt = checkpoint(shared_http, source)

    response = shared_http.post(url(source, "/resume"), params={"source_artifact_id": ckpt["id"]})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] != source["id"]
    assert body["project_id"] == project["id"]
    assert body["status"] == "排队中"
    assert body["model"] == "llama-2-13b"
    assert body["dataset"] == "中文语料"
    assert body["hyperparameters"] == {"warmup_steps": 10, "learning_rate": 2e-5, "batch_size": 32}
    assert body["resources"] == {"gpu_type": "A100", "gpu_count": 4, "node": "gpu-01"}
    assert body["resumed_from"] == ckpt["id"]
    assert body["parent_run_id"] == source["id"]
    assert body["start_step"] == 2000
    assert body["current_step"] == 2000
    assert body["name"] == "run-002"
    assert body["artifacts"] == []
    assert shared_http.get(f"/projects/{project['id']}").json()["run_count"] == 2


def test_resume_overrides_merge(shared_http):
    source = new_run(
        shared_http,
        model="llama-2-13b",
        hyperparameters={"learning_rate": 2e-5, "batch_size": 32},
        resources={"gpu_type": "A100", "gpu_count": 4},
    )
    ckpt = checkpoint(shared_http, source)

    response = shared_http.post(
        url(source, "/resume"),
        params={"source_artifact_id": ckpt["id"]},
        json={
            "name": "继续训练",
            "model": "llama-2-13b-chat",
            "dataset": "新语料",
            "hyperparameters": {"learning_rate": 1.5e-5, "num_epochs": 1},
            "resources": {"gpu_count": 8},
        },
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "继续训练"
    assert body["model"] == "llama-2-13b-chat"
    assert body["dataset"] == "新语料"
    assert body["hyperparameters"] == {"learning_rate": 1.5e-5, "batch_size": 32, "num_epochs": 1}
    assert body["resources"] == {"gpu_type": "A100", "gpu_count": 8}
    source_after = shared_http.get(url(source)).json()
    assert source_after["hyperparameters"] == {"learning_rate": 2e-5, "batch_size": 32}


def test_resume_with_empty_body_and_checkpoint_without_step(shared_http):
    source = new_run(shared_http)
    ckpt = checkpoint(shared_http, source, step=None)

    response = shared_http.post(url(source, "/resume"), params={"source_artifact_id": ckpt["id"]}, json={})

    assert response.status_code == 201, response.text
    assert response.json()["start_step"] == 0
    assert response.json()["resumed_from"] == ckpt["id"]


def test_resume_from_a_finished_or_cancelled_run(shared_http):
    source = new_run(shared_http)
    ckpt = checkpoint(shared_http, source)
    assert shared_http.post(url(source, "/cancel")).status_code == 200
    response = shared_http.post(url(source, "/resume"), params={"source_artifact_id": ckpt["id"]})
    assert response.status_code == 201, response.text


def test_resume_errors(shared_http):
    source = new_run(shared_http)
    other = new_run(shared_http, source["project_id"])
    foreign = checkpoint(shared_http, other)
    event = checkpoint(shared_http, source, type="event")
    runs_before = shared_http.get(f"/projects/{source['project_id']}").json()["run_count"]

    unknown = shared_http.post(url(source, "/resume"), params={"source_artifact_id": "ckpt_missing"})
    assert unknown.status_code == 404
    assert "ckpt_missing" in unknown.json()["detail"]

    wrong_run = shared_http.post(url(source, "/resume"), params={"source_artifact_id": foreign["id"]})
    assert wrong_run.status_code == 404
    assert foreign["id"] in wrong_run.json()["detail"]

    not_checkpoint = shared_http.post(url(source, "/resume"), params={"source_artifact_id": event["id"]})
    assert not_checkpoint.status_code == 422
    assert "checkpoint" in not_checkpoint.json()["detail"]

    missing = shared_http.post(url(source, "/resume"), json={"name": "x"})
    assert missing.status_code == 422
    assert field_label("source_artifact_id") in missing.json()["detail"]

    bad_body = shared_http.post(
        url(source, "/resume"),
        params={"source_artifact_id": checkpoint(shared_http, source)["id"]},
        json={"hyperparameters": [1], "colour": "红"},
    )
    assert bad_body.status_code == 422
    assert "超参数" in bad_body.json()["detail"] and "colour" in bad_body.json()["detail"]

    assert shared_http.get(f"/projects/{source['project_id']}").json()["run_count"] == runs_before


def test_resume_in_archived_project_conflicts(shared_http):
    source = new_run(shared_http)
    ckpt = checkpoint(shared_http, source)
    shared_http.patch(f"/projects/{source['project_id']}", json={"status": "已归档"})

    response = shared_http.post(url(source, "/resume"), params={"source_artifact_id": ckpt["id"]})

    assert response.status_code == 409
    assert shared_http.get(f"/projects/{source['project_id']}").json()["run_count"] == 1


# Lookups


def test_run_under_another_project_is_404(shared_http):
    run = new_run(shared_http)
    other = new_project(shared_http)
    wrong = f"/projects/{other['id']}/runs/{run['id']}"

    for response in (
        shared_http.get(wrong),
        shared_http.patch(wrong, json={"status": "运行中"}),
        shared_http.post(wrong + "/cancel"),
        shared_http.post(wrong + "/resume", params={"source_artifact_id": "ckpt_x"}),
        shared_http.get(wrong + "/logs"),
        shared_http.get(wrong + "/metrics"),
        shared_http.get(wrong + "/artifacts"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"运行 {run['id']} 不存在"
    assert shared_http.get(url(run)).json()["status"] == "排队中"


def test_get_run_by_id(shared_http):
    run = new_run(shared_http)
    ckpt = checkpoint(shared_http, run)

    response = shared_http.get(f"/runs/{run['id']}")

    assert response.status_code == 200
    assert response.json()["project_id"] == run["project_id"]
    assert [a["id"] for a in response.json()["artifacts"]] == [ckpt["id"]]
    missing = shared_http.get("/runs/run_missing")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "运行 run_missing 不存在"


def test_list_runs(shared_http):
    project = new_project(shared_http)
    assert shared_http.get(f"/projects/{project['id']}/runs").json() == []
    first = new_run(shared_http, project["id"])
    second = new_run(shared_http, project["id"], name="第二个")
    new_run(shared_http)  # another project's run

    response = shared_http.get(f"/projects/{project['id']}/runs")

    assert response.status_code == 200
    runs = response.json()
    assert [r["id"] for r in runs] == [first["id"], second["id"]]
    assert [r["name"] for r in runs] == ["run-001", "第二个"]
    assert all("artifacts" not in r for r in runs)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataset": "d"}, "model"),
        ({"model": "m"}, "dataset"),
        ({"model": " ", "dataset": "d"}, "model"),
        ({"model": "m", "dataset": "d", "hyperparameters": [1]}, "hyperparameters"),
        ({"model": "m", "dataset": "d", "resources": {"gpu_count": -1}}, "resources.gpu_count"),
        ({"model": "m", "dataset": "d", "resources": {"gpu_count": "四"}}, "resources.gpu_count"),
        ({"model": "m", "dataset": "d", "status": "运行中"}, "status"),
    ],
)
def test_create_run_validation(shared_http, body, field):
    project = new_project(shared_http)
    response = shared_http.post(f"/projects/{project['id']}/runs", json=body)
    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]
    assert shared_http.get(f"/projects/{project['id']}").json()["run_count"] == 0
