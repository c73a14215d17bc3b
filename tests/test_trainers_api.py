"""Trainer plugins as the API sees them: listing, choosing per run, project defaults, unknown names."""

import pytest

from tests.helpers import new_project, unique


@pytest.fixture
def project(shared_http):
    return new_project(shared_http, name=unique("训练器项目"), owner="小李")


def test_installed_trainers_are_listed_with_their_hyperparameters(shared_http):
    trainers = {t["name"]: t for t in shared_http.get("/trainers").json()}
    simulated = trainers["simulated"]
    assert simulated["description"]
    names = [h["name"] for h in simulated["hyperparameters"]]
    assert {"learning_rate", "batch_size", "num_epochs", "steps_per_epoch", "seed"} <= set(names)


def test_a_run_uses_the_simulated_trainer_unless_told_otherwise(shared_http, project):
    run = shared_http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    assert run["trainer"] == "simulated"


def test_a_project_default_trainer_is_inherited_and_versioned(shared_http, project):
    patched = shared_http.patch(f"/projects/{project['id']}", json={"default_trainer": "simulated"})
    assert patched.status_code == 200 and patched.json()["default_trainer"] == "simulated"
    assert patched.json()["versions"][-1]["changes"]["default_trainer"] == {"old": None, "new": "simulated"}
    run = shared_http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    assert run["trainer"] == "simulated"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/projects/{pid}/runs", {"model": "m", "dataset": "d", "trainer": "deepspeed"}),
        ("PATCH", "/projects/{pid}", {"default_trainer": "deepspeed"}),
        ("POST", "/projects", {"name": "另一个", "owner": "x", "default_trainer": "deepspeed"}),
    ],
)
def test_an_unknown_trainer_is_a_422_that_lists_the_installed_ones(shared_http, project, method, path, body):
    response = shared_http.request(method, path.format(pid=project["id"]), json=body)
    assert response.status_code == 422
    assert "deepspeed" in response.json()["detail"] and "simulated" in response.json()["detail"]


def test_resume_keeps_the_source_trainer_and_refuses_an_unknown_one(shared_http, project):
    run = shared_http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    base = f"/projects/{project['id']}/runs/{run['id']}"
    checkpoint = shared_http.post(
        base + "/artifacts",
        json={"type": "checkpoint", "name": "c", "step": 3, "path": f"s3://artifacts/{project['id']}/{run['id']}/c"},
    ).json()
    refused = shared_http.post(base + f"/resume?source_artifact_id={checkpoint['id']}", json={"trainer": "nope"})
    assert refused.status_code == 422 and "simulated" in refused.json()["detail"]
    resumed = shared_http.post(base + f"/resume?source_artifact_id={checkpoint['id']}").json()
    assert resumed["trainer"] == "simulated"


@pytest.mark.parametrize(
    "trainer, hyperparameters, named",
    [
        ("simulated", {"batch_size": -1}, "batch_size"),
        ("simulated", {"learning_rate": "fast"}, "learning_rate"),
        ("simulated", {"num_epochs": 1, "steps_per_epoch": 10, "warmup_steps": 11}, "warmup_steps"),
        ("tiny-lm", {"d_model": 100, "n_heads": 3}, "n_heads"),
        ("tiny-lm", {"device": "tpu"}, "device"),
    ],
)
def test_hyperparameters_are_checked_by_the_trainers_declaration_when_the_run_is_created(
    shared_http, project, trainer, hyperparameters, named
):
    if trainer == "tiny-lm":
        pytest.importorskip("torch", reason="需要安装 ltm[torch]（CI 会安装）")
    created = shared_http.post(
        f"/projects/{project['id']}/runs",
        json={"model": "m", "dataset": "sample", "trainer": trainer, "hyperparameters": hyperparameters},
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["field"].startswith("hyperparameters") and named in created.json()["detail"]
    assert shared_http.get(f"/projects/{project['id']}/runs").json() == []


def test_a_model_that_cannot_fit_in_memory_is_refused_at_creation(shared_http, project):
    """tiny-lm's bounds alone allow ~50B parameters; the estimate refuses what no single device holds."""
    pytest.importorskip("torch", reason="需要安装 ltm[torch]（CI 会安装）")
    largest = {"d_model": 8192, "n_layers": 64, "n_heads": 64, "batch_size": 4096, "context_length": 4096}
    refused = shared_http.post(
        f"/projects/{project['id']}/runs",
        json={"model": "m", "dataset": "sample", "trainer": "tiny-lm", "hyperparameters": largest},
    )
    assert refused.status_code == 422, refused.text
    assert "GiB" in refused.json()["detail"] and "LTM_MAX_RUN_MEMORY_GIB" in refused.json()["detail"]
    modest = {"d_model": 1024, "n_layers": 8, "n_heads": 8, "batch_size": 32, "context_length": 512}
    accepted = shared_http.post(
        f"/projects/{project['id']}/runs",
        json={"model": "m", "dataset": "sample", "trainer": "tiny-lm", "hyperparameters": modest},
    )
    assert accepted.status_code == 201, accepted.text
    assert [run["id"] for run in shared_http.get(f"/projects/{project['id']}/runs").json()] == [accepted.json()["id"]]
