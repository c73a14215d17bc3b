"""Sweeps through the API with no controller running (launcher `none`): the tests act as the controller (start,
promote and end trials, the journal, the sweep's end) and as the training flow (reports, checkpoints), and check
what the API keeps: rungs, idempotent trials, promotions resumed from checkpoints, ranking, cancel, deletion, 404s
and Chinese 422s that name the field with nothing stored."""

import re
import uuid

import pytest

from ltm import ApiError, Client
from ltm.store.db import Database
from tests.helpers import new_project, unique

TEMPLATE = {
    "model": "m-7b",
    "dataset": "d",
    "hyperparameters": {"num_epochs": 9, "steps_per_epoch": 5, "step_seconds": 0},
}
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"type": "choice", "values": [8, 16, 32]},
}
PARAMS = {"learning_rate": 1e-3, "batch_size": 16}
RUNGS = [5, 15, 45]
CHINESE = re.compile("[\u4e00-\u9fff]")


def sweep_body(**changes) -> dict:
    return {
        "name": unique("调参"),
        "template": TEMPLATE,
        "space": SPACE,
        "objective": {"metric": "eval_loss", "direction": "minimize"},
        "sampler": "random",
        "pruner": "asha",
        "max_trials": 6,
        "parallelism": 2,
        "reduction_factor": 3,
        "min_epochs": 1,
        "seed": 3,
        **changes,
    }


def post_sweep(http, project_id: str, **changes):
    return http.post(f"/projects/{project_id}/sweeps", json=sweep_body(**changes))


def new_sweep(http, project_id: str, **changes) -> dict:
    response = post_sweep(http, project_id, **changes)
    assert response.status_code == 201, response.text
    return response.json()


def sweeps_of(http, project_id: str) -> list[dict]:
    response = http.get(f"/projects/{project_id}/sweeps")
    assert response.status_code == 200, response.text
    return response.json()


def status_of(call) -> int:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status_code


def train(client: Client, project_id: str, run_id: str, to_step: int) -> str:
    """What the training flow does for a trial's run: run to `to_step`, save a checkpoint there, complete."""
    client.report(project_id, run_id, status="运行中", current_step=to_step, total_steps=RUNGS[-1])
    path = f"s3://artifacts/{project_id}/{run_id}/ckpt-{to_step}-{uuid.uuid4().hex[:6]}"
    checkpoint = client.register_artifact(
        project_id, run_id, type="checkpoint", name=f"第 {to_step} 步", path=path, step=to_step
    )
    client.report(project_id, run_id, status="已完成")
    return checkpoint.id


@pytest.fixture
def project(shared_http) -> dict:
    return new_project(shared_http)


@pytest.fixture
def sweep(shared_http, project) -> dict:
    return new_sweep(shared_http, project["id"])


# ---- creation


def test_a_sweep_is_created_with_its_rungs_listed_and_audited(shared_http, shared_client, project):
    created = post_sweep(shared_http, project["id"])

    assert created.status_code == 201, created.text
    sweep = created.json()
    assert re.fullmatch(r"sweep_\w{6,}", sweep["id"])
    assert (sweep["status"], sweep["rungs"], sweep["total_steps"]) == ("运行中", RUNGS, 45)
    assert (sweep["trials"], sweep["best"], sweep["trial_count"]) == ([], None, 0)
    assert [s["id"] for s in sweeps_of(shared_http, project["id"])] == [sweep["id"]]
    audited = [e for e in shared_client.audit_trail(project["id"]) if e.action == "创建调参"]
    assert [(e.target, e.details) for e in audited] == [(sweep["name"], sweep["id"])]


@pytest.mark.parametrize(
    ("changes", "rungs"),
    [
        ({"pruner": "none"}, [45]),
        ({"min_epochs": 2, "reduction_factor": 2}, [10, 20, 40, 45]),
        ({"pruner": "hyperband", "min_epochs": 3}, [15, 45]),
    ],
)
def test_rungs_are_min_epochs_times_powers_of_the_reduction_factor(shared_http, project, changes, rungs):
    assert new_sweep(shared_http, project["id"], **changes)["rungs"] == rungs


def space_with(**dimensions) -> dict:
    return {**SPACE, **dimensions}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"space": {"lr": {"type": "float", "low": 1e-5, "high": 1e-2}}}, "space.lr.low", ["lr", "learning_rate"]),
        (
            {"space": space_with(learning_rate={"type": "float", "low": 1e-5, "high": 5})},
            "space.learning_rate.high",
            ["learning_rate"],
        ),
        (
            {"space": space_with(learning_rate={"type": "float", "low": 0.1, "high": 0.1})},
            "space.learning_rate",
            ["low"],
        ),
        (
            {"space": space_with(learning_rate={"type": "float", "low": 0, "high": 0.1, "log": True})},
            "space.learning_rate",
            ["log"],
        ),
        ({"space": space_with(batch_size={"type": "int", "low": 1.5, "high": 8})}, "space.batch_size", ["整数"]),
        ({"space": space_with(batch_size={"type": "choice"})}, "space.batch_size", ["values"]),
        ({"space": space_with(batch_size={"type": "choice", "values": [8, 8]})}, "space.batch_size", ["重复"]),
        ({"sampler": "grid"}, "space.learning_rate.type", ["grid", "learning_rate"]),
        ({"min_epochs": 9}, "min_epochs", ["num_epochs"]),
        ({"space": space_with(num_epochs={"type": "int", "low": 3, "high": 9})}, "space.num_epochs", ["num_epochs"]),
        ({"template": {**TEMPLATE, "trainer": "no-such-trainer"}}, "template.trainer", ["no-such-trainer"]),
        (
            {"template": {**TEMPLATE, "hyperparameters": {**TEMPLATE["hyperparameters"], "learning_rate": 5}}},
            "template.hyperparameters.learning_rate",
            ["learning_rate"],
        ),
        ({"max_trials": 0}, "max_trials", []),
        ({"parallelism": 0}, "parallelism", []),
        ({"objective": {"metric": "eval_loss", "direction": "up"}}, "objective.direction", ["minimize"]),
    ],
)
def test_a_bad_sweep_is_a_chinese_422_naming_the_field_and_nothing_is_stored(
    shared_http, project, changes, field, words
):
    refused = post_sweep(shared_http, project["id"], **changes)

    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["errors"][0]["field"] == field, body
    assert CHINESE.search(body["detail"]) and all(word in body["detail"] for word in words), body["detail"]
    assert "Value error" not in body["detail"] and "Input should" not in body["detail"]
    assert sweeps_of(shared_http, project["id"]) == []
    assert shared_http.get(f"/projects/{project['id']}/runs").json() == []


# ---- trials


def test_starting_a_trial_twice_answers_the_same_run_placed_in_the_sweep(shared_client, project, sweep):
    first = shared_client.start_trial(project["id"], sweep["id"], 0, PARAMS)
    again = shared_client.start_trial(project["id"], sweep["id"], 0, PARAMS)

    assert again.id == first.id
    assert (first.sweep_id, first.trial_number, first.rung, first.stop_at_step) == (sweep["id"], 0, 0, RUNGS[0])
    assert first.hyperparameters == {**TEMPLATE["hyperparameters"], **PARAMS}
    assert first.name == sweep["name"] + "-t000" and first.status == "排队中"
    shown = shared_client.get_sweep(project["id"], sweep["id"])
    assert [(t.number, t.state, t.params, t.run_ids) for t in shown.trials] == [(0, "运行中", PARAMS, [first.id])]
    assert [r.id for r in shared_client.list_runs(project["id"])] == [first.id]


def test_a_trial_with_a_parameter_outside_the_space_is_a_422(shared_http, project, sweep):
    trials = f"/projects/{project['id']}/sweeps/{sweep['id']}/trials"

    refused = shared_http.post(trials, json={"number": 0, "params": {**PARAMS, "warmup_steps": 2}})

    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "params.warmup_steps"
    assert CHINESE.search(refused.json()["detail"])
    assert shared_http.get(f"/projects/{project['id']}/runs").json() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"learning_rate": 0.5, "batch_size": 16}, "params.learning_rate"),
        ({"learning_rate": 1e-3, "batch_size": 64}, "params.batch_size"),
        ({"learning_rate": 1e-3}, "params.batch_size"),
        ({"learning_rate": "0.001", "batch_size": 16}, "params.learning_rate"),
    ],
    ids=["float-above-high", "value-not-among-choices", "dimension-missing", "not-a-number"],
)
def test_a_trial_with_a_value_outside_the_space_is_a_422(shared_http, project, sweep, params, field):
    refused = shared_http.post(
        f"/projects/{project['id']}/sweeps/{sweep['id']}/trials", json={"number": 0, "params": params}
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == field
    assert CHINESE.search(refused.json()["detail"])
    assert shared_http.get(f"/projects/{project['id']}/runs").json() == []


def test_no_trial_starts_past_max_trials(shared_client, shared_http, project):
    sweep = new_sweep(shared_http, project["id"], max_trials=2)
    for number in (0, 1):
        shared_client.start_trial(project["id"], sweep["id"], number, PARAMS)

    assert status_of(lambda: shared_client.start_trial(project["id"], sweep["id"], 2, PARAMS)) == 409
    assert len(shared_client.list_runs(project["id"])) == 2


def test_a_promotion_resumes_the_next_rung_from_the_checkpoint_where_the_last_one_stopped(
    shared_client, project, sweep
):
    p, s = project["id"], sweep["id"]
    first = shared_client.start_trial(p, s, 0, PARAMS)
    assert status_of(lambda: shared_client.promote_trial(p, s, 0, 1)) == 409
    checkpoint = train(shared_client, p, first.id, RUNGS[0])

    promoted = shared_client.promote_trial(p, s, 0, 1)

    assert (promoted.parent_run_id, promoted.resumed_from, promoted.start_step) == (first.id, checkpoint, RUNGS[0])
    assert (promoted.trial_number, promoted.rung, promoted.stop_at_step) == (0, 1, RUNGS[1])
    assert promoted.name == sweep["name"] + "-t000-r1" and promoted.hyperparameters == first.hyperparameters
    assert shared_client.promote_trial(p, s, 0, 1).id == promoted.id
    assert status_of(lambda: shared_client.promote_trial(p, s, 0, len(RUNGS))) == 422
    shown = shared_client.get_sweep(p, s)
    assert [(t.run_id, t.run_ids, t.rung) for t in shown.trials] == [(promoted.id, [first.id, promoted.id], 1)]


def test_the_last_rung_trains_to_the_end(shared_client, project, sweep):
    p, s = project["id"], sweep["id"]
    run = shared_client.start_trial(p, s, 0, PARAMS)
    for rung in range(1, len(RUNGS)):
        train(shared_client, p, run.id, RUNGS[rung - 1])
        run = shared_client.promote_trial(p, s, 0, rung)

    assert (run.rung, run.start_step, run.stop_at_step) == (len(RUNGS) - 1, RUNGS[-2], None)


def test_a_pruned_trial_keeps_its_reason_on_its_latest_run_and_cannot_be_promoted_or_change_state(
    shared_client, project, sweep
):
    p, s = project["id"], sweep["id"]
    first = shared_client.start_trial(p, s, 0, PARAMS)
    train(shared_client, p, first.id, RUNGS[0])
    latest = shared_client.promote_trial(p, s, 0, 1)
    train(shared_client, p, latest.id, RUNGS[1])
    reason = "第 15 步 eval_loss=3.076，在本层 3 个试验中排第 3，被 ASHA 提前停止"

    shared_client.end_trial(p, s, 0, "已剪枝", objective=3.076, reason=reason)

    trial = shared_client.get_sweep(p, s).trials[0]
    assert (trial.state, trial.pruned_reason, trial.objective, trial.run_id) == ("已剪枝", reason, 3.076, latest.id)
    assert shared_client.get_run(p, latest.id).message == reason
    assert shared_client.get_run(p, first.id).message != reason
    assert status_of(lambda: shared_client.promote_trial(p, s, 0, 2)) == 409
    assert status_of(lambda: shared_client.end_trial(p, s, 0, "已完成", objective=1.0)) == 409
    shared_client.end_trial(p, s, 0, "已剪枝", objective=3.076, reason=reason)
    assert shared_client.get_sweep(p, s).trials[0].state == "已剪枝"


def finished_trials(client: Client, project_id: str, sweep_id: str) -> dict[int, str]:
    """Trials 0–3 of a one-rung sweep: 0 and 1 completed (objectives 0.5 and 0.2), 2 pruned at 0.1, 3 running;
    the runs of 0 and 1 have checkpoints at steps 20 and 45. Answers their newest checkpoints by trial."""
    runs = [client.start_trial(project_id, sweep_id, n, PARAMS) for n in range(4)]
    checkpoints = {}
    for number, objective in ((0, 0.5), (1, 0.2)):
        client.report(project_id, runs[number].id, status="运行中", current_step=20, total_steps=45)
        path = f"s3://artifacts/{project_id}/{runs[number].id}/ckpt-20"
        client.register_artifact(project_id, runs[number].id, type="checkpoint", name="第 20 步", path=path, step=20)
        checkpoints[number] = train(client, project_id, runs[number].id, 45)
        client.end_trial(project_id, sweep_id, number, "已完成", objective=objective)
    client.end_trial(project_id, sweep_id, 2, "已剪枝", objective=0.1, reason="剪枝")
    return checkpoints


@pytest.mark.parametrize(("direction", "order"), [("minimize", [1, 0, 2, 3]), ("maximize", [0, 1, 2, 3])])
def test_trials_are_ranked_completed_first_by_objective_and_the_best_names_its_newest_checkpoint(
    shared_client, shared_http, project, direction, order
):
    objective = {"metric": "eval_loss", "direction": direction}
    sweep = new_sweep(shared_http, project["id"], pruner="none", objective=objective)
    newest = finished_trials(shared_client, project["id"], sweep["id"])

    shown = shared_client.get_sweep(project["id"], sweep["id"])

    assert [t.number for t in shown.trials] == order
    best = shown.trials[0]
    assert (shown.best.number, shown.best.run_id, shown.best.objective) == (best.number, best.run_id, best.objective)
    assert shown.best.checkpoint_id == newest[best.number]
    assert shown.best_objective == best.objective
    assert shared_client.list_sweeps(project["id"])[0].best_objective == best.objective


def test_steps_trained_and_saved_add_up_over_rungs_and_trials(shared_client, project, sweep):
    p, s = project["id"], sweep["id"]
    first = shared_client.start_trial(p, s, 0, PARAMS)
    train(shared_client, p, first.id, RUNGS[0])
    promoted = shared_client.promote_trial(p, s, 0, 1)
    shared_client.report(p, promoted.id, status="运行中", current_step=12)
    other = shared_client.start_trial(p, s, 1, PARAMS)
    shared_client.report(p, other.id, status="运行中", current_step=3)

    shown = shared_client.get_sweep(p, s)

    by_number = {t.number: t for t in shown.trials}
    assert (by_number[0].steps_trained, by_number[0].steps_saved, by_number[0].step) == (5 + 7, 5, 12)
    assert (by_number[1].steps_trained, by_number[1].steps_saved) == (3, 0)
    assert (shown.steps_trained, shown.steps_saved, shown.steps_if_complete) == (15, 5, 2 * 45)


# ---- journal, the sweep's end


def test_the_journal_reads_back_in_order_from_any_offset_until_the_sweep_ends(
    shared_client, shared_http, project, sweep
):
    p, s = project["id"], sweep["id"]
    journal = f"/projects/{p}/sweeps/{s}/journal"
    assert shared_http.post(journal, json={"entries": [{"op": 0}, {"op": 1}]}).json() == {"next": 2}
    assert shared_http.post(journal, json={"entries": [{"op": 2, "值": "中文"}]}).json() == {"next": 3}

    everything = shared_client.read_sweep_journal(p, s)
    assert (everything.entries, everything.next) == ([{"op": 0}, {"op": 1}, {"op": 2, "值": "中文"}], 3)
    tail = shared_client.read_sweep_journal(p, s, start=2)
    assert (tail.entries, tail.next) == ([{"op": 2, "值": "中文"}], 3)
    past = shared_client.read_sweep_journal(p, s, start=7)
    assert (past.entries, past.next) == ([], 7)

    assert shared_client.update_sweep(p, s, status="已完成").status == "已完成"
    assert status_of(lambda: shared_client.append_sweep_journal(p, s, [{"op": 3}])) == 409
    assert shared_client.read_sweep_journal(p, s).next == 3
    assert status_of(lambda: shared_client.start_trial(p, s, 0, PARAMS)) == 409


def test_a_cancel_stops_the_sweep_and_its_active_trials_once(shared_client, project, sweep):
    p, s = project["id"], sweep["id"]
    queued = shared_client.start_trial(p, s, 0, PARAMS)
    running = shared_client.start_trial(p, s, 1, PARAMS)
    shared_client.report(p, running.id, status="运行中", current_step=2)
    done = shared_client.start_trial(p, s, 2, PARAMS)
    train(shared_client, p, done.id, RUNGS[0])

    cancelled = shared_client.cancel_sweep(p, s)

    assert cancelled.status == "已取消" and cancelled.finished_at is not None
    assert shared_client.get_run(p, queued.id).status == "已取消"
    assert shared_client.get_run(p, running.id).status in ("取消中", "已取消")
    assert shared_client.get_run(p, done.id).status == "已完成"
    states = {t.number: t.state for t in shared_client.get_sweep(p, s).trials}
    assert states == {0: "已取消", 1: "已取消", 2: "已取消"}
    assert status_of(lambda: shared_client.cancel_sweep(p, s)) == 409
    assert status_of(lambda: shared_client.start_trial(p, s, 3, PARAMS)) == 409
    assert status_of(lambda: shared_client.update_sweep(p, s, status="已完成")) == 409
    assert status_of(lambda: shared_client.promote_trial(p, s, 2, 1)) == 409
    assert shared_client.get_sweep(p, s).status == "已取消"
    assert [e.action for e in shared_client.audit_trail(p)].count("停止调参") == 1


def test_a_finished_trial_keeps_its_state_when_the_sweep_is_cancelled(shared_client, project, sweep):
    p, s = project["id"], sweep["id"]
    run = shared_client.start_trial(p, s, 0, PARAMS)
    train(shared_client, p, run.id, RUNGS[0])
    shared_client.end_trial(p, s, 0, "已剪枝", objective=2.0, reason="剪枝")

    shared_client.cancel_sweep(p, s)

    trial = shared_client.get_sweep(p, s).trials[0]
    assert (trial.state, trial.pruned_reason) == ("已剪枝", "剪枝")


# ---- deletion and unknown ids


def test_deleting_a_project_removes_its_sweeps(start_api, tmp_path):
    api = start_api(tmp_path / "home", LTM_ARTIFACT_ROOT=str(tmp_path / "artifacts"))
    with Client(api.url) as client:
        doomed = client.create_project(unique(), owner=unique("负责人"))
        sweep = client.create_sweep(doomed.id, unique("调参"), TEMPLATE, SPACE, {"metric": "eval_loss"}, 4, seed=3)
        client.start_trial(doomed.id, sweep.id, 0, PARAMS)
        client.append_sweep_journal(doomed.id, sweep.id, [{"op": 0}])
        client.cancel_sweep(doomed.id, sweep.id)

        client.delete_project(doomed.id, dry_run=False)

        assert status_of(lambda: client.get_sweep(doomed.id, sweep.id)) == 404
        kept = client.create_project(unique(), owner=unique("负责人"))
        other = client.create_sweep(kept.id, sweep.name, TEMPLATE, SPACE, {"metric": "eval_loss"}, 4, seed=3)
        assert client.start_trial(kept.id, other.id, 0, PARAMS).sweep_id == other.id
    api.stop()
    db = Database(tmp_path / "home" / "ltm.duckdb")
    try:
        for table, column in (("sweeps", "id"), ("sweep_journal", "sweep_id"), ("sweep_trials", "sweep_id")):
            assert db.fetch_one(f"SELECT count(*) FROM {table} WHERE {column} = ?", [sweep.id]) == (0,), table
        assert db.fetch_one("SELECT count(*) FROM sweep_trials WHERE sweep_id = ?", [other.id]) == (1,)
    finally:
        db.close()


def test_a_project_with_a_running_sweep_is_not_deleted(shared_client, shared_http):
    project = shared_client.create_project(unique(), owner=unique("负责人"))
    sweep = shared_client.create_sweep(project.id, unique("调参"), TEMPLATE, SPACE, {"metric": "eval_loss"}, 4, seed=3)

    refused = shared_http.delete(f"/projects/{project.id}", params={"dry_run": "false"})

    assert (
        refused.status_code == 409 and sweep.id in refused.json()["detail"] and "停止调参" in refused.json()["detail"]
    )
    assert shared_client.get_sweep(project.id, sweep.id).status == "运行中"
    shared_client.cancel_sweep(project.id, sweep.id)
    assert shared_http.delete(f"/projects/{project.id}", params={"dry_run": "false"}).status_code == 200


@pytest.mark.parametrize("sweep_id", ["sweep_000000000000", "sweep_abc", "run_000000000000", "x" * 300])
def test_an_unknown_or_malformed_sweep_id_is_a_chinese_404(shared_http, project, sweep_id):
    base = f"/projects/{project['id']}/sweeps/{sweep_id}"
    for method, suffix, body in (
        ("GET", "", None),
        ("POST", "/cancel", None),
        ("GET", "/journal", None),
        ("POST", "/trials", {"number": 0, "params": PARAMS}),
    ):
        answer = shared_http.request(method, base + suffix, json=body)
        assert answer.status_code == 404, (method, suffix, answer.text)
        assert CHINESE.search(answer.json()["detail"]), answer.text


def test_a_sweep_of_another_project_is_a_404(shared_http, shared_client, project, sweep):
    other = new_project(shared_http)

    answer = shared_http.get(f"/projects/{other['id']}/sweeps/{sweep['id']}")

    assert answer.status_code == 404 and CHINESE.search(answer.json()["detail"]), answer.text
    assert status_of(lambda: shared_client.start_trial(other["id"], sweep["id"], 0, PARAMS)) == 404
    assert status_of(lambda: shared_client.cancel_sweep(other["id"], sweep["id"])) == 404
    assert shared_client.get_sweep(project["id"], sweep["id"]).status == "运行中"
    assert sweeps_of(shared_http, other["id"]) == []
