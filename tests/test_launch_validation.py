"""Launching a run is checked before anything is stored: the trainer's declared hyperparameters (names, types,
ranges), the merge of run values over project defaults (null removes a default), the effective configuration
preview, resume from a final checkpoint, and Chinese field names in every 422."""

import pytest

from ltm import ApiError
from tests.helpers import new_project, unique

RUN = {"model": "qwen-7b", "dataset": "语料"}


def runs_of(http, project: dict) -> list[dict]:
    return http.get(f"/projects/{project['id']}/runs").json()


def create(http, project: dict, **body):
    return http.post(f"/projects/{project['id']}/runs", json={**RUN, **body})


def preview(http, project: dict, **body):
    return http.post(f"/projects/{project['id']}/runs/preview", json={**RUN, **body})


@pytest.mark.parametrize(
    "hyperparameters, field, words",
    [
        ({"learning_rate": -5}, "hyperparameters.learning_rate", ["learning_rate", "-5", "来自运行的超参数"]),
        ({"num_epochs": 1e9}, "hyperparameters.num_epochs", ["num_epochs", "1000000000"]),
        ({"batch_size": 0}, "hyperparameters.batch_size", ["batch_size", "不小于 1"]),
        ({"batch_size": "abc"}, "hyperparameters.batch_size", ["batch_size", "必须是整数", "'abc'"]),
        (
            {"lr": 1e-4},
            "hyperparameters.lr",
            ["超参数 lr", "不是训练器 simulated 声明的超参数", "是否想写 learning_rate？"],
        ),
        ({"epochs": 2}, "hyperparameters.epochs", ["是否想写 num_epochs？"]),
        ({"trainer": "tiny-lm"}, "hyperparameters.trainer", ["不能写 trainer", "「训练器」字段"]),
    ],
)
def test_a_bad_hyperparameter_is_a_422_naming_the_key_and_nothing_is_stored(shared_http, hyperparameters, field, words):
    project = new_project(shared_http)
    for answer in (
        create(shared_http, project, hyperparameters=hyperparameters),
        preview(shared_http, project, hyperparameters=hyperparameters),
    ):
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert [error["field"] for error in body["errors"]] == [field]
        assert all(word in body["detail"] for word in words), body["detail"]
    assert runs_of(shared_http, project) == []


def test_an_unknown_project_default_is_named_with_its_source_and_a_run_null_removes_it(shared_http):
    project = new_project(shared_http, default_hyperparameters={"lr": 0.1, "batch_size": 8})

    refused = create(shared_http, project)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "超参数 lr（来自项目默认超参数）" in detail and "是否想写 learning_rate？" in detail
    assert "设为 null" in detail
    assert refused.json()["errors"][0]["field"] == "default_hyperparameters.lr"

    created = create(shared_http, project, hyperparameters={"lr": None, "learning_rate": 0.01})
    assert created.status_code == 201, created.text
    assert created.json()["hyperparameters"] == {"batch_size": 8, "learning_rate": 0.01}


def test_run_values_override_project_defaults_and_null_brings_back_the_trainer_default(shared_http):
    """The issue's case: a deleted warmup_steps: 10 default came back and made a 5-step run fail."""
    project = new_project(shared_http, default_hyperparameters={"warmup_steps": 10, "batch_size": 8})
    short = {"num_epochs": 1, "steps_per_epoch": 5}

    refused = create(shared_http, project, hyperparameters=short)
    assert refused.status_code == 422
    assert "warmup_steps 来自项目默认超参数" in refused.json()["detail"]

    created = create(shared_http, project, hyperparameters={**short, "warmup_steps": None, "batch_size": 32})
    assert created.status_code == 201, created.text
    assert created.json()["hyperparameters"] == {"num_epochs": 1, "steps_per_epoch": 5, "batch_size": 32}
    assert len(runs_of(shared_http, project)) == 1


def test_preview_shows_each_value_with_its_source_and_stores_nothing(shared_http):
    project = new_project(shared_http, default_hyperparameters={"learning_rate": 3e-5, "warmup_steps": 10})
    answer = preview(
        shared_http,
        project,
        hyperparameters={"num_epochs": 2, "warmup_steps": None},
        resources={"gpu_type": "A100", "gpu_count": 2},
        priority=5,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["trainer"], body["total_steps"], body["priority"]) == ("simulated", 200, 5)
    assert body["resources"] == {"gpu_type": "A100", "gpu_count": 2}
    assert body["hyperparameters"] == {"learning_rate": 3e-5, "num_epochs": 2}
    sources = {row["name"]: (row["value"], row["source"]) for row in body["effective_hyperparameters"]}
    assert sources["learning_rate"] == (3e-5, "项目默认")
    assert sources["num_epochs"] == (2, "运行")
    assert sources["warmup_steps"] == (0, "训练器默认")
    assert sources["batch_size"] == (16, "训练器默认")
    assert all(row["description"] for row in body["effective_hyperparameters"])
    assert runs_of(shared_http, project) == []


def test_preview_without_model_or_dataset_and_for_a_script_run(shared_client):
    project = shared_client.create_project(unique(), unique("负责人"), default_hyperparameters={"max_steps": 60})
    script = shared_client.preview_run(project.id, entrypoint="python train.py", hyperparameters={"anything": 1})
    assert script.trainer == "script"
    assert {(row.name, row.source) for row in script.effective_hyperparameters} == {
        ("max_steps", "项目默认"),
        ("anything", "运行"),
    }
    with pytest.raises(ApiError) as refused:
        shared_client.preview_run(project.id, hyperparameters={"max_steps": 10})
    assert refused.value.status_code == 422 and "max_steps" in refused.value.detail
    assert shared_client.list_runs(project.id) == []


def test_an_archived_project_or_unknown_trainer_gives_the_same_answer_to_preview_and_create(shared_http):
    project = new_project(shared_http)
    for send in (create, preview):
        answer = send(shared_http, project, trainer="deepspeed")
        assert answer.status_code == 422 and "训练器：未安装训练器 'deepspeed'" in answer.json()["detail"]
    shared_http.patch(f"/projects/{project['id']}", json={"status": "已归档"})
    assert create(shared_http, project).status_code == preview(shared_http, project).status_code == 409


def finished_run_with_final_checkpoint(http, hyperparameters: dict) -> tuple[dict, dict]:
    project = new_project(http)
    run = create(http, project, hyperparameters=hyperparameters).json()
    base = f"/projects/{project['id']}/runs/{run['id']}"
    total = hyperparameters["num_epochs"] * hyperparameters["steps_per_epoch"]
    assert http.patch(base, json={"status": "运行中", "current_step": total, "total_steps": total}).is_success
    checkpoint = http.post(
        base + "/artifacts",
        json={
            "type": "checkpoint",
            "name": "最终",
            "step": total,
            "path": f"s3://artifacts/{project['id']}/{run['id']}/c",
        },
    ).json()
    assert http.patch(base, json={"status": "已完成", "progress": 1.0}).is_success
    return run, checkpoint


def test_resume_from_the_final_checkpoint_needs_more_epochs(shared_http):
    run, checkpoint = finished_run_with_final_checkpoint(shared_http, {"num_epochs": 2, "steps_per_epoch": 10})
    resume = f"/projects/{run['project_id']}/runs/{run['id']}/resume"

    for overrides in (None, {"hyperparameters": {"learning_rate": 1e-4}}, {"hyperparameters": {"num_epochs": 1}}):
        refused = shared_http.post(resume, params={"source_artifact_id": checkpoint["id"]}, json=overrides)
        assert refused.status_code == 422, refused.text
        assert "请调高训练轮数" in refused.json()["detail"] and "第 20 步" in refused.json()["detail"]
        assert refused.json()["errors"][0]["field"] == "hyperparameters.num_epochs"
    assert len(runs_of(shared_http, {"id": run["project_id"]})) == 1

    resumed = shared_http.post(
        resume, params={"source_artifact_id": checkpoint["id"]}, json={"hyperparameters": {"num_epochs": 3}}
    )
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["start_step"] == 20 and resumed.json()["hyperparameters"]["num_epochs"] == 3


def test_resume_overrides_follow_the_create_rules(shared_http):
    project = new_project(shared_http)
    run = create(shared_http, project, hyperparameters={"warmup_steps": 5, "batch_size": 8}).json()
    base = f"/projects/{project['id']}/runs/{run['id']}"
    checkpoint = shared_http.post(
        base + "/artifacts",
        json={"type": "checkpoint", "name": "c", "step": 3, "path": f"s3://artifacts/{project['id']}/{run['id']}/c"},
    ).json()
    resume = base + f"/resume?source_artifact_id={checkpoint['id']}"

    refused = shared_http.post(resume, json={"hyperparameters": {"lr": 0.1}})
    assert refused.status_code == 422 and "是否想写 learning_rate？" in refused.json()["detail"]
    refused = shared_http.post(resume, json={"hyperparameters": {"trainer": "tiny-lm"}})
    assert refused.status_code == 422 and "不能写 trainer" in refused.json()["detail"]
    resumed = shared_http.post(resume, json={"hyperparameters": {"warmup_steps": None}})
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["hyperparameters"] == {"batch_size": 8}


@pytest.mark.parametrize(
    "method, path, body, params, label",
    [
        ("POST", "/projects", {"name": "长" * 201, "owner": "o"}, None, "名称：长度不能超过 200"),
        ("POST", "/projects", {"name": "n", "owner": "o", "tags": ["t" * 100]}, None, "标签第 1 项："),
        ("POST", "/projects", {"name": "n", "owner": "o", "default_hyperparameters": []}, None, "默认超参数："),
        ("GET", "/projects", None, {"q": "字" * 300}, "搜索内容："),
        (
            "POST",
            "/projects/{pid}/runs",
            {"model": "m", "dataset": "d", "resources": {"gpu_count": -1}},
            None,
            "GPU 数量：",
        ),
    ],
)
def test_validation_errors_name_fields_in_chinese(shared_http, method, path, body, params, label):
    project = new_project(shared_http)
    answer = shared_http.request(method, path.format(pid=project["id"]), json=body, params=params)
    assert answer.status_code == 422, answer.text
    assert label in answer.json()["detail"], answer.json()["detail"]
    assert all(error["label"] for error in answer.json()["errors"])
