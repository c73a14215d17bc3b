"""Resume fidelity: a resumed run compared with its parent at every step both trained after the checkpoint.

Through `ltm up` the simulated trainer's resumes are checked as they really run; on an API of the module's own the
test plays the training flow, so each verdict (一致, 不一致, 无重叠, 不是恢复的运行, 原运行已删除), the environment
facts and the console badge can be set up exactly."""

import time
import uuid
from datetime import datetime, timezone

import pytest
from streamlit.testing.v1 import AppTest

from ltm import ApiError, Client, arrow_batches
from ltm.models import RunStatus
from tests.conftest import ApiProcess, wait_until
from tests.helpers import unique

FAST = {"num_epochs": 2, "steps_per_epoch": 10, "step_seconds": 0, "seed": 7}
T0_US = int(datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)
ENVIRONMENT = {
    "python": "3.11.7",
    "ltm": "0.1.0",
    "torch": "2.13.0",
    "cuda": "12.4",
    "device_type": "cuda",
    "packages": {"numpy": "2.1.0", "pandas": "2.2.3", "scipy": "1.14.1", "tqdm": "4.66.5"},
}


# Through `ltm up`: the simulated trainer in real Prefect flows


@pytest.fixture(scope="module")
def system_client(ltm_system):
    with Client(ltm_system.api_url) as client:
        yield client


def wait_done(client: Client, run):
    return wait_until(
        lambda: (r := client.get_run(run.project_id, run.id)).status == RunStatus.COMPLETED and r,
        timeout=120,
        message=f"run {run.id} to complete",
    )


def points(client: Client, run, name: str) -> dict[int, float]:
    (series,) = client.get_metrics(run.project_id, run.id, names=[name], max_points=10_000).series
    return {p.step: p.last for p in series.points}


def test_a_faithful_resume_is_identical_and_a_changed_learning_rate_is_found_at_its_first_step(system_client):
    client = system_client
    project = client.create_project(unique("保真度"), owner="测试", task_type="文本摘要")
    parent = wait_done(client, client.create_run(project.id, "m-7b", "d", hyperparameters=FAST))
    checkpoint = next(a for a in parent.artifacts if a.type.value == "checkpoint" and a.step == 10)

    same = client.resume_run(project.id, parent.id, source_artifact_id=checkpoint.id)
    changed = client.resume_run(project.id, parent.id, checkpoint.id, hyperparameters={"learning_rate": 1e-3})
    assert same.start_step == 10
    assert wait_done(client, same).total_steps == wait_done(client, changed).total_steps == parent.total_steps == 20

    faithful = client.resume_fidelity(project.id, same.id)
    assert faithful.status == "一致" and faithful.environment_differences == []
    assert faithful.summary == "与原运行逐步一致（第 11–20 步）"
    assert (faithful.first_step, faithful.last_step) == (11, 20)
    assert {"train_loss", "learning_rate", "eval_loss", "eval_rouge_l"} <= set(faithful.metrics_compared)
    assert faithful.points_compared == sum(
        len([s for s in points(client, parent, name) if s > 10]) for name in faithful.metrics_compared
    )

    drifted = client.resume_fidelity(project.id, changed.id)
    first = drifted.first_difference
    assert drifted.status == "不一致" and first.step == 11 and first.metric == "learning_rate"
    assert first.parent_value == points(client, parent, "learning_rate")[11]
    assert first.run_value == points(client, changed, "learning_rate")[11]
    assert first.absolute_difference == first.run_value - first.parent_value
    values = f"learning_rate {first.parent_value:.4g} → {first.run_value:.4g}（"
    assert drifted.summary.startswith("第 11 步起与原运行不同：" + values)
    assert {d.metric: d.step for d in drifted.differences}["train_loss"] == 11


# On an API of the module's own, the test playing the training flow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("fidelity") / "home"
    root = home.parent / "artifacts"
    api = ApiProcess(home, LTM_ARTIFACT_ROOT=str(root)).start()
    with Client(api.url) as sdk:
        yield sdk, root
    api.stop()


@pytest.fixture
def client(server):
    return server[0]


@pytest.fixture
def root(server):
    return server[1]


@pytest.fixture
def project(client):
    return client.create_project(unique("保真度"), owner="小李")


def loss(step: int) -> float:
    return 3.0 / (1.0 + 0.01 * step)


def train(client: Client, run, until: int, value=loss, environment=None, since=None, end=True) -> None:
    """What a training flow reports from step `since` (default: its start) to `until`: it starts with its
    environment, logs train_loss every step, eval_loss every 10 steps and GPU telemetry (which differs on every
    machine), and ends unless `end` is False."""
    since = run.start_step if since is None else since
    if since == run.start_step:
        client.report(run.project_id, run.id, status="运行中", environment=environment)
    steps = list(range(since + 1, until + 1))
    evals = [s for s in steps if s % 10 == 0]
    names = ["train_loss"] * len(steps) + ["eval_loss"] * len(evals) + ["gpu/0/utilization"] * len(steps)
    values = [value(s) for s in steps] + [value(s) + 0.1 for s in evals] + [hash((run.id, s)) % 100 for s in steps]
    send(client, run, names, steps + evals + steps, values)
    client.report(run.project_id, run.id, current_step=until)
    if end:
        client.report(run.project_id, run.id, status="已完成")


def send(client: Client, run, names: list[str], steps: list[int], values: list[float]) -> None:
    for first in range(0, len(steps), 50_000):
        part = slice(first, first + 50_000)
        table = arrow_batches.metric_table(names[part], steps[part], values[part], [T0_US + s for s in steps[part]])
        client.send_table(run.project_id, run.id, "metrics", uuid.uuid4().hex, table)


def checkpoint(client: Client, root, run, step: int):
    """A checkpoint as the flow registers it, in the run's own folder (its files are not needed here)."""
    path = f"{root}/{run.project_id}/{run.id}/step-{step}"
    return client.register_artifact(run.project_id, run.id, "checkpoint", f"第 {step} 步检查点", path, step=step)


def parent_and_resume(client: Client, root, project, parent_until: int = 20, **parent_fields):
    """A parent that saves a checkpoint at step 10 and trains on to `parent_until`, and a run resumed from it."""
    parent = client.create_run(project.id, "qwen-7b", "语料", hyperparameters={"num_epochs": 2, "steps_per_epoch": 10})
    train(client, parent, 10, end=False, **parent_fields)
    source = checkpoint(client, root, parent, 10)
    train(client, parent, parent_until, since=10, **parent_fields)
    return parent, client.resume_run(project.id, parent.id, source.id)


def test_environment_differences_are_listed_with_both_values_and_packages_summarised(client, root, project):
    _, resumed = parent_and_resume(client, root, project, environment=ENVIRONMENT)
    packages = {"numpy": "2.2.0", "pandas": "2.2.3", "rich": "13.9.4", "scipy": "1.15.0", "tqdm": "4.66.5"}
    elsewhere = {**ENVIRONMENT, "torch": "2.14.1", "cuda": None, "device_type": "cpu", "packages": packages}
    train(client, resumed, 20, environment=elsewhere)

    fidelity = client.resume_fidelity(project.id, resumed.id)

    assert fidelity.status == "一致" and fidelity.environment_compared
    assert fidelity.metrics_compared == ["eval_loss", "train_loss"]
    assert fidelity.metrics_skipped == ["gpu/0/utilization"]  # telemetry differs between any two runs
    assert fidelity.points_compared == 10 + 1
    assert [(d.key, d.parent, d.run) for d in fidelity.environment_differences] == [
        ("torch", "2.13.0", "2.14.1"),
        ("cuda", "12.4", None),
        ("device_type", "cuda", "cpu"),
        (
            "packages",
            {"numpy": "2.1.0", "rich": None, "scipy": "1.14.1"},
            {"numpy": "2.2.0", "rich": "13.9.4", "scipy": "1.15.0"},
        ),
    ]
    assert fidelity.summary == (
        "与原运行逐步一致（第 11–20 步）；环境不同：torch 2.13.0 → 2.14.1，cuda 12.4 → 无，device_type cuda → cpu，"
        "3 个包版本不同：numpy 2.1.0 → 2.2.0、rich 无 → 13.9.4、scipy 1.14.1 → 1.15.0"
    )


def test_the_summary_names_the_first_differing_step_its_change_and_the_environment(client, root, project):
    _, resumed = parent_and_resume(
        client, root, project, value=lambda s: 2.31 if s == 15 else loss(s), environment=ENVIRONMENT
    )
    train(
        client,
        resumed,
        20,
        value=lambda s: 2.35 if s >= 15 else loss(s),
        environment={**ENVIRONMENT, "torch": "2.14.1"},
    )

    fidelity = client.resume_fidelity(project.id, resumed.id)

    assert fidelity.status == "不一致"
    assert (
        fidelity.summary == "第 15 步起与原运行不同：train_loss 2.31 → 2.35（+1.7%）；环境不同：torch 2.13.0 → 2.14.1"
    )
    first = fidelity.first_difference
    assert (first.metric, first.step, first.parent_value, first.run_value) == ("train_loss", 15, 2.31, 2.35)
    assert first.relative_difference == pytest.approx(0.04 / 2.31)
    assert [(d.metric, d.step) for d in fidelity.differences] == [("train_loss", 15), ("eval_loss", 20)]


def test_a_point_perturbed_deep_inside_is_found_exactly_with_no_tolerance(client, root, project):
    parent = client.create_run(project.id, "qwen-7b", "语料", hyperparameters={"num_epochs": 3, "steps_per_epoch": 100})
    train(client, parent, 100, end=False)
    source = checkpoint(client, root, parent, 100)
    train(client, parent, 300, since=100)
    resumed = client.resume_run(project.id, parent.id, source.id)
    nudged = loss(153) + 1e-12  # deep inside the 200 shared steps, off the eval steps, one part in 10**12
    train(client, resumed, 300, value=lambda s: nudged if s == 153 else loss(s))

    fidelity = client.resume_fidelity(project.id, resumed.id)

    assert fidelity.status == "不一致" and (fidelity.first_step, fidelity.last_step) == (101, 300)
    assert fidelity.points_compared == 200 + 20
    first = fidelity.first_difference
    assert (first.metric, first.step, first.parent_value, first.run_value) == ("train_loss", 153, loss(153), nudged)
    assert [d.metric for d in fidelity.differences] == ["train_loss"]
    assert fidelity.summary == "第 153 步起与原运行不同：train_loss 1.185770750988 → 1.185770750989（+8.4e-11%）"


def test_a_parent_that_stopped_at_the_checkpoint_has_nothing_to_compare(client, root, project):
    _, resumed = parent_and_resume(client, root, project, parent_until=10)
    waiting = client.resume_fidelity(project.id, resumed.id)
    assert waiting.status == "无重叠" and waiting.run_active
    train(client, resumed, 20)

    fidelity = client.resume_fidelity(project.id, resumed.id)

    assert fidelity.status == "无重叠" and not fidelity.run_active and fidelity.points_compared == 0
    assert fidelity.summary == "原运行在第 10 步的检查点之后没有继续训练，没有可比较的步"


def test_an_active_resume_is_compared_as_far_as_it_has_come(client, root, project):
    _, resumed = parent_and_resume(client, root, project)
    train(client, resumed, 15, end=False)

    fidelity = client.resume_fidelity(project.id, resumed.id)

    assert fidelity.status == "一致" and fidelity.run_active and (fidelity.first_step, fidelity.last_step) == (11, 15)
    assert fidelity.summary == "与原运行逐步一致（第 11–15 步）；运行仍在进行，结论只针对至今已有的步"


def test_a_run_not_resumed_and_a_resume_whose_parent_was_deleted(client, root, project):
    parent, resumed = parent_and_resume(client, root, project)
    train(client, resumed, 20)
    alone = client.resume_fidelity(project.id, parent.id)
    assert alone.status == "不是恢复的运行" and alone.parent_run_id is None

    client.delete_run(project.id, parent.id, dry_run=False)
    orphan = client.resume_fidelity(project.id, resumed.id)

    assert orphan.status == "原运行已删除" and orphan.parent_run_id == parent.id
    assert orphan.summary == f"原运行 {parent.id} 已删除，无法比较"


def test_unknown_ids_are_404(client, root, project):
    _, resumed = parent_and_resume(client, root, project)
    other = client.create_project(unique("别的项目"), owner="小王")
    for project_id, run_id in [
        (project.id, "run_000000000000"),
        ("proj_000000000000", resumed.id),
        (other.id, resumed.id),
    ]:
        with pytest.raises(ApiError) as caught:
            client.resume_fidelity(project_id, run_id)
        assert caught.value.status_code == 404


def test_a_200k_point_parent_is_compared_quickly(client, root, project):
    parent = client.create_run(
        project.id, "qwen-7b", "语料", hyperparameters={"num_epochs": 2, "steps_per_epoch": 100_000}
    )
    steps = list(range(1, 200_001))
    client.report(project.id, parent.id, status="运行中")
    send(client, parent, ["train_loss"] * len(steps), steps, [loss(s) for s in steps])
    source = checkpoint(client, root, parent, 100_000)
    client.report(project.id, parent.id, status="已完成")
    resumed = client.resume_run(project.id, parent.id, source.id)
    client.report(project.id, resumed.id, status="运行中")
    send(client, resumed, ["train_loss"] * 100_000, steps[100_000:], [loss(s) for s in steps[100_000:]])

    started = time.perf_counter()
    fidelity = client.resume_fidelity(project.id, resumed.id)
    elapsed = time.perf_counter() - started

    print(f"\nfidelity of a 100k-step resume against a 200k-point parent: {elapsed * 1000:.0f} ms")
    assert fidelity.status == "一致" and fidelity.points_compared == 100_000
    assert fidelity.summary.startswith("与原运行逐步一致（第 100001–200000 步）")


# The console badge


def _badge(project_id: str, run_id: str) -> None:
    from ltm import Client
    from ltm.console.client import get_client
    from ltm.console.fidelity import show_fidelity

    client = get_client()
    show_fidelity(client, Client.get_run(client, project_id, run_id))


def badge(client: Client, run, monkeypatch) -> AppTest:
    monkeypatch.setenv("LTM_API_URL", client.base_url.rstrip("/"))
    at = AppTest.from_function(_badge, args=(run.project_id, run.id), default_timeout=30).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def markdown(at: AppTest) -> list[str]:
    return [str(m.value) for m in at.markdown]


def test_the_badge_is_green_red_or_grey_with_the_details(client, root, project, monkeypatch, fresh_cache):
    parent, same = parent_and_resume(client, root, project)
    train(client, same, 20)
    source = next(a for a in client.list_artifacts(project.id, parent.id) if a.step == 10)
    drifted = client.resume_run(project.id, parent.id, source.id)
    train(client, drifted, 20, value=lambda s: loss(s) * 1.01, environment=ENVIRONMENT)

    green = badge(client, same, monkeypatch)
    assert any(m.startswith(":green-badge[") and "恢复保真度：一致" in m for m in markdown(green))
    assert "与原运行逐步一致（第 11–20 步）" in [str(c.value) for c in green.caption]
    assert not green.dataframe

    red = badge(client, drifted, monkeypatch)
    assert any(m.startswith(":red-badge[") and "恢复保真度：不一致" in m for m in markdown(red))
    table = red.dataframe[0].value
    assert table.to_dict("records")[0]["指标"] == "train_loss" and table["第一个不同的步"].tolist() == [11, 20]

    client.delete_run(project.id, parent.id, dry_run=False)
    grey = badge(client, same, monkeypatch)
    assert any(m.startswith(":gray-badge[") and "原运行已删除" in m for m in markdown(grey))

    nothing = badge(client, parent_and_resume(client, root, project)[0], monkeypatch)
    assert not nothing.markdown and not nothing.caption  # a run that was not resumed shows no badge
