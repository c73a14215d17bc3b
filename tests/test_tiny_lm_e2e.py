"""A real tiny causal LM trained by the same flows: start, watch the loss fall, cancel, resume, release, load."""

import pytest

torch = pytest.importorskip("torch", reason="需要安装 ltm[torch]（CI 会安装）")

from ltm import Client  # noqa: E402
from ltm.models import RunStatus  # noqa: E402
from tests.conftest import wait_until  # noqa: E402


def test_a_real_model_trains_cancels_resumes_and_its_released_checkpoint_loads(ltm_system):
    from ltm.trainers.tiny_lm import generate, load_checkpoint

    api = Client(ltm_system.api_url)
    assert "tiny-lm" in [t.name for t in api.list_trainers()]
    project = api.create_project(name="真实小模型", owner="测试", default_trainer="tiny-lm")
    run = api.create_run(
        project.id,
        model="tiny-lm",
        dataset="sample",
        hyperparameters={"num_epochs": 1, "steps_per_epoch": 3000, "d_model": 64},
    )
    assert run.trainer == "tiny-lm"
    wait_until(lambda: api.get_run(project.id, run.id).current_step >= 60, timeout=120, message="real training")
    cancelled = api.cancel_run(project.id, run.id)
    assert cancelled.status == RunStatus.CANCELLED
    checkpoint = next(a for a in cancelled.artifacts if a.name == "取消前的检查点")

    resumed = api.resume_run(
        project.id, run.id, source_artifact_id=checkpoint.id, hyperparameters={"steps_per_epoch": checkpoint.step + 40}
    )
    done = wait_until(
        lambda: (r := api.get_run(project.id, resumed.id)).status.is_terminal and r,
        timeout=120,
        message="the resumed run to finish",
    )
    assert done.status == RunStatus.COMPLETED, done.message
    assert done.start_step == checkpoint.step and done.current_step == checkpoint.step + 40

    losses = {**points(api, run, "train_loss"), **points(api, done, "train_loss")}
    steps = sorted(losses)
    first, last = [losses[s] for s in steps[:10]], [losses[s] for s in steps[-10:]]
    assert sum(last) / 10 < 0.6 * sum(first) / 10
    assert done.metrics["eval_perplexity"] > 1 and "tokens_per_second" in done.metrics

    best = max((a for a in done.artifacts if a.type.value == "checkpoint"), key=lambda a: a.step)
    released = api.tag_artifact(project.id, done.id, best.id, "发布", notes="损失最低")
    assert [t.value.value for t in released.tags] == ["发布"]
    model = load_checkpoint(released.path)
    text = generate(model, "今天", max_new_tokens=20, temperature=0)
    assert text.startswith("今天") and len(text) > 2


def points(api, run, name):
    series = api.get_metrics(run.project_id, run.id, names=[name], max_points=10_000).series
    return {p.step: p.last for p in series[0].points}
