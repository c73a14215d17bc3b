"""Trainer plugins as the API sees them: listing, choosing per run, project defaults, unknown names."""

import pytest


@pytest.fixture
def project(http):
    return http.post("/projects", json={"name": "训练器项目", "owner": "小李"}).json()


def test_installed_trainers_are_listed_with_their_hyperparameters(http):
    trainers = {t["name"]: t for t in http.get("/trainers").json()}
    simulated = trainers["simulated"]
    assert simulated["description"]
    names = [h["name"] for h in simulated["hyperparameters"]]
    assert {"learning_rate", "batch_size", "num_epochs", "steps_per_epoch", "seed"} <= set(names)


def test_a_run_uses_the_simulated_trainer_unless_told_otherwise(http, project):
    run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    assert run["trainer"] == "simulated"


def test_a_project_default_trainer_is_inherited_and_versioned(http, project):
    patched = http.patch(f"/projects/{project['id']}", json={"default_trainer": "simulated"})
    assert patched.status_code == 200 and patched.json()["default_trainer"] == "simulated"
    assert patched.json()["versions"][-1]["changes"]["default_trainer"] == {"old": None, "new": "simulated"}
    run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    assert run["trainer"] == "simulated"


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/projects/{pid}/runs", {"model": "m", "dataset": "d", "trainer": "deepspeed"}),
    ("PATCH", "/projects/{pid}", {"default_trainer": "deepspeed"}),
    ("POST", "/projects", {"name": "另一个", "owner": "x", "default_trainer": "deepspeed"}),
])
def test_an_unknown_trainer_is_a_422_that_lists_the_installed_ones(http, project, method, path, body):
    response = http.request(method, path.format(pid=project["id"]), json=body)
    assert response.status_code == 422
    assert "deepspeed" in response.json()["detail"] and "simulated" in response.json()["detail"]


def test_resume_keeps_the_source_trainer_and_refuses_an_unknown_one(http, project):
    run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    base = f"/projects/{project['id']}/runs/{run['id']}"
    checkpoint = http.post(base + "/artifacts", json={"type": "checkpoint", "name": "c", "step": 3,
                                                      "path": f"s3://artifacts/{project['id']}/{run['id']}/c"}).json()
    refused = http.post(base + f"/resume?source_artifact_id={checkpoint['id']}", json={"trainer": "nope"})
    assert refused.status_code == 422 and "simulated" in refused.json()["detail"]
    resumed = http.post(base + f"/resume?source_artifact_id={checkpoint['id']}").json()
    assert resumed["trainer"] == "simulated"
