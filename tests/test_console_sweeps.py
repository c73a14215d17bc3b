"""The 调参 page driven by AppTest against the real API. The shared API starts no controller (launcher none), so the
tests act as the controller through the SDK: they start trials, train their runs rung by rung (report, metrics,
checkpoints), promote, prune and end them, then end the sweep. Proven: the project page leads to the sweeps, the
list shows them, the detail shows the trials best first with the pruned reason and the steps saved, both charts carry
the right data, the best runs are one click from the compare page, the best checkpoint is tagged 候选 at once and
发布 only after a confirmation, stopping asks first, the create form sends the space as typed, refused input comes
back in Chinese without losing the form, and a trial's run page names its sweep."""

import io
import json
from datetime import datetime, timezone

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from ltm import Client
from ltm.console import sweep_charts
from ltm.models import MetricBatch, MetricPoint
from tests.console_helpers import labelled, open_console, texts
from tests.helpers import unique

TEMPLATE = {
    "model": "m-7b",
    "dataset": "d",
    "hyperparameters": {"num_epochs": 9, "steps_per_epoch": 5, "step_seconds": 0},
}
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"type": "choice", "values": [8, 16, 32]},
}
OBJECTIVE = {"metric": "eval_loss", "direction": "minimize"}
PRUNED_REASON = "第 5 步 eval_loss=3.2，在本层 2 个试验中排第 2，被 ASHA 提前停止"


def new_sweep(client: Client, project_id: str, **fields):
    return client.create_sweep(
        project_id, unique("搜索"), TEMPLATE, SPACE, OBJECTIVE, max_trials=4, sampler="random", pruner="asha", **fields
    )


def train(client: Client, run, until: int, loss: float, checkpoint: bool = True) -> None:
    """What the training flow reports for one run: it starts, logs eval_loss, saves a checkpoint and ends."""
    project_id = run.project_id
    client.report(project_id, run.id, status="运行中")
    now = datetime.now(timezone.utc)
    points = [
        MetricPoint(name="eval_loss", step=step, value=loss + (until - step) / 10, timestamp=now)
        for step in range(run.start_step + 1, until + 1)
    ]
    client.send_metrics(project_id, run.id, MetricBatch(batch_id=f"{run.id}-loss", points=points))
    client.report(project_id, run.id, current_step=until, progress=until / 45)
    if checkpoint:
        path = f"s3://artifacts/{project_id}/{run.id}/step-{until}"
        client.register_artifact(project_id, run.id, "checkpoint", f"第 {until} 步检查点", path, step=until)
    client.report(project_id, run.id, status="已完成")


@pytest.fixture(scope="module")
def finished(shared_api):
    """A completed sweep of four trials: 2 trains to the end in one run (1.1), 1 is pruned at step 5 (3.2), 0 is
    promoted twice, from checkpoints at steps 5 and 15, and ends best (0.8), 3 fails at step 3. They end in the
    order 2, 1, 0, 3."""
    with Client(shared_api.url) as client:
        project = client.create_project(unique("调参页"), "小李", task_type="文本摘要")
        sweep = new_sweep(client, project.id, seed=3)
        params = [
            {"learning_rate": 1e-3, "batch_size": 16},
            {"learning_rate": 1e-2, "batch_size": 32},
            {"learning_rate": 1e-4, "batch_size": 8},
            {"learning_rate": 1e-5, "batch_size": 8},
        ]
        first = [client.start_trial(project.id, sweep.id, number, p) for number, p in enumerate(params)]
        train(client, first[2], 45, 1.1)
        client.end_trial(project.id, sweep.id, 2, "已完成", objective=1.1)
        train(client, first[1], 5, 3.2)
        client.end_trial(project.id, sweep.id, 1, "已剪枝", objective=3.2, reason=PRUNED_REASON)
        train(client, first[0], 5, 2.0)
        rung1 = client.promote_trial(project.id, sweep.id, 0, 1)
        train(client, rung1, 15, 1.2)
        rung2 = client.promote_trial(project.id, sweep.id, 0, 2)
        train(client, rung2, 45, 0.8)
        client.end_trial(project.id, sweep.id, 0, "已完成", objective=0.8)
        client.report(project.id, first[3].id, status="运行中")
        client.report(project.id, first[3].id, current_step=3, status="失败", message="显存不足")
        client.end_trial(project.id, sweep.id, 3, "失败", reason="运行失败：显存不足")
        client.update_sweep(project.id, sweep.id, status="已完成", message="已完成 4 个试验")
        runs = {"0": [first[0].id, rung1.id, rung2.id], "1": [first[1].id], "2": [first[2].id], "3": [first[3].id]}
        yield client, project, client.get_sweep(project.id, sweep.id), runs


def sweep_page(project_id: str, sweep_id: str) -> AppTest:
    return open_console("sweeps", project_id=project_id, sweep_id=sweep_id)


def table_with(at: AppTest, column: str):
    [frame] = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def chart(at: AppTest, title: str):
    found = [c for c in at.get("vega_lite_chart") if json.loads(c.proto.spec)["title"] == title]
    assert found, f"no chart titled {title!r}"
    return found[0]


def chart_data(chart, name: str) -> list[dict]:
    [dataset] = [d for d in chart.proto.datasets if d.name == name]
    return pa.ipc.open_stream(io.BytesIO(dataset.data.data)).read_all().to_pylist()


def test_the_project_page_leads_to_its_sweeps_and_the_list_shows_them(console_env, finished):
    client, project, sweep, runs = finished
    at = open_console("project", project_id=project.id)
    [entry] = [link for link in at.page_link if link.label == "调参（超参数搜索）"]
    assert entry.proto.query_string == f"project_id={project.id}"

    at = open_console("sweeps", project_id=project.id)
    assert not at.exception
    [row] = table_with(at, "采样器").to_dict("records")
    assert row["名称"].startswith(f"sweep?project_id={project.id}&sweep_id={sweep.id}#")
    assert (row["状态"], row["目标"], row["试验"]) == ("已完成", "eval_loss（最小化）", "4 / 4")
    assert row["最佳目标"] == pytest.approx(0.8)
    assert (row["采样器"], row["剪枝器"]) == ("random", "asha")


def test_the_detail_shows_trials_best_first_with_the_pruned_reason_and_the_steps_saved(console_env, finished):
    client, project, sweep, runs = finished
    at = sweep_page(project.id, sweep.id)
    assert at.title[0].value == f"调参 {sweep.name}"
    trials = table_with(at, "试验").to_dict("records")
    assert [row["试验"] for row in trials] == [0, 2, 1, 3], "completed by objective, then pruned, then failed"
    assert [row["状态"] for row in trials] == ["已完成", "已完成", "已剪枝", "失败"]
    assert [(row["learning_rate"], row["batch_size"]) for row in trials[:2]] == [("0.001", "16"), ("0.0001", "8")]
    assert trials[0]["eval_loss"] == pytest.approx(0.8) and trials[3]["eval_loss"] != trials[3]["eval_loss"]
    assert [(row["层"], row["步数"]) for row in trials] == [(2, 45), (0, 45), (0, 5), (0, 3)]
    assert trials[2]["说明"] == PRUNED_REASON and trials[3]["说明"] == "运行失败：显存不足"
    assert trials[0]["运行"].startswith(f"run?project_id={project.id}&run_id={runs['0'][-1]}#"), "the latest run"

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["最佳目标"] == "0.8"
    assert metrics["训练步数"] == "98 / 180", "45 + 5 + 45 + 3 trained of 4 × 45"
    assert metrics["续训节省"] == "20 步", "trial 0 resumed at steps 5 and 15 instead of training them again"
    assert "第 0 层到第 5 步（4 个试验） → 第 1 层到第 15 步（1 个试验） → 第 2 层到第 45 步（1 个试验）" in " ".join(
        texts(at.markdown)
    )
    assert any("说明：已完成 4 个试验" in caption for caption in texts(at.caption))
    assert not [b for b in at.button if b.label == "停止调参"], "a finished sweep cannot be stopped"


def test_the_charts_show_the_best_so_far_and_each_trial_across_the_hyperparameters(console_env, finished):
    client, project, sweep, runs = finished
    at = sweep_page(project.id, sweep.id)
    progress = chart_data(chart(at, "最佳目标变化"), sweep_charts.BEST_DATA)
    assert [(r["trial"], r["state"], r["objective"]) for r in progress] == [
        ("试验 2", "已完成", 1.1),
        ("试验 1", "已剪枝", 3.2),
        ("试验 0", "已完成", 0.8),
    ], "finished trials in the order they ended; the failed one has no objective"
    assert [r["best"] for r in progress] == [1.1, 1.1, 0.8], "a pruned trial's early value never counts as best"

    parallel = chart(at, "超参数与目标（平行坐标）")
    lines = {(r["trial"], r["axis"]): r for r in chart_data(parallel, sweep_charts.LINES_DATA)}
    assert lines[("试验 0", "learning_rate（对数）")]["y"] == pytest.approx(2 / 3), "1e-3 between 1e-5 and 1e-2 in log"
    assert lines[("试验 2", "batch_size")]["y"] == 0 and lines[("试验 0", "batch_size")]["y"] == 0.5
    assert lines[("试验 0", "eval_loss")]["y"] == 0 and lines[("试验 1", "eval_loss")]["y"] == 1
    assert lines[("试验 1", "eval_loss")]["state"] == "已剪枝"
    ticks = chart_data(parallel, sweep_charts.AXES_DATA)
    assert {t["label"] for t in ticks if t["axis"] == "batch_size"} == {"8", "16", "32"}
    assert {t["label"] for t in ticks if t["axis"] == "learning_rate（对数）"} == {"1e-5", "0.00032", "0.01"}
    spec = json.loads(parallel.proto.spec)
    [drawn] = [layer for layer in spec["layer"] if layer["mark"]["type"] == "line"]
    assert drawn["encoding"]["color"]["field"] == "objective"
    assert drawn["encoding"]["strokeDash"]["scale"]["domain"] == ["已完成", "已剪枝"], "pruned trials are dashed"


def test_the_best_trial_is_one_click_from_comparing_it_with_the_next_best(console_env, finished):
    client, project, sweep, runs = finished
    at = sweep_page(project.id, sweep.id)
    [compare] = [link for link in at.page_link if link.label == "与其后 2 个最好的试验对比"]
    best_runs = [runs["0"][-1], runs["2"][0], runs["1"][0]]
    assert compare.proto.query_string == f"project_id={project.id}&runs={'%2C'.join(best_runs)}"
    [best] = [link for link in at.page_link if link.label == "打开最佳试验的运行"]
    assert best.proto.query_string == f"project_id={project.id}&run_id={runs['0'][-1]}"


def test_the_best_checkpoint_is_tagged_candidate_at_once_and_released_after_a_confirmation(console_env, finished):
    client, project, sweep, runs = finished
    best_run = runs["0"][-1]
    assert sweep.best.run_id == best_run and sweep.best.checkpoint_id
    at = sweep_page(project.id, sweep.id)
    at.button(key="best_candidate").click().run()
    assert not at.exception, [e.message for e in at.exception]
    [checkpoint] = [a for a in client.get_run(project.id, best_run).artifacts if a.id == sweep.best.checkpoint_id]
    assert [t.value.value for t in checkpoint.tags] == ["候选"]
    assert any("打上“候选”标签" in s for s in texts(at.success))

    at.button(key="best_release").click().run()
    assert any("确认将" in w and "标记为发布" in w for w in texts(at.warning))
    assert client.list_releases(project.id).current is None, "nothing released before the confirmation"
    at.button(key="release_confirm").click().run()
    assert client.list_releases(project.id).current.artifact_id == sweep.best.checkpoint_id


def test_stopping_a_running_sweep_asks_first_then_cancels_it(console_env, shared_api):
    with Client(shared_api.url) as client:
        project = client.create_project(unique("停止调参"), "小李", task_type="文本摘要")
        sweep = new_sweep(client, project.id)
        run = client.start_trial(project.id, sweep.id, 0, {"learning_rate": 1e-3, "batch_size": 8})
        client.report(project.id, run.id, status="运行中")
        at = sweep_page(project.id, sweep.id)
        assert [row["状态"] for row in table_with(at, "试验").to_dict("records")] == ["运行中"]
        at.button(key="stop_sweep").click().run()
        assert any("确认停止调参" in w for w in texts(at.warning))
        assert client.get_sweep(project.id, sweep.id).status.value == "运行中", "not before the confirmation"
        at.button(key="stop_sweep_confirm").click().run()
        assert not at.exception, [e.message for e in at.exception]
        stopped = client.get_sweep(project.id, sweep.id)
        assert stopped.status.value == "已取消" and stopped.trials[0].state.value == "已取消"
        assert client.get_run(project.id, run.id).status.value in ("取消中", "已取消")
        assert any("调参已停止" in s for s in texts(at.success))
        assert not [b for b in at.button if b.label == "停止调参"]


def fill_form(at: AppTest, name: str, low: str, high: str) -> None:
    at.text_input(key=f"sweep_name_{generation(at)}").set_value(name)
    at.text_input(key=f"sweep_dataset_{generation(at)}").set_value("d")
    at.text_area(key=f"sweep_hp_{generation(at)}").set_value(json.dumps(TEMPLATE["hyperparameters"]))
    at.text_input(key=f"sweep_dim_low_{generation(at)}_0").set_value(low)
    at.text_input(key=f"sweep_dim_high_{generation(at)}_0").set_value(high)


def generation(at: AppTest) -> str:
    """The form's current key suffix: a new one after a sweep is created."""
    [key] = [w.key for w in at.text_input if w.key.startswith("sweep_name_")]
    return key.removeprefix("sweep_name_")


def test_the_create_form_sends_the_space_as_typed_and_refusals_keep_the_form(console_env, shared_api):
    with Client(shared_api.url) as client:
        project = client.create_project(unique("新建调参"), "小李", task_type="文本摘要", base_model="m-7b")
        at = open_console("sweeps", project_id=project.id)
        assert any("还没有调参" in info for info in texts(at.info))
        gen = generation(at)
        at.button(key=f"sweep_dim_add_{gen}").click().run()
        at.text_input(key=f"sweep_dim_name_{gen}_1").set_value("batch_size")
        at.selectbox(key=f"sweep_dim_type_{gen}_1").select("choice").run()
        at.text_input(key=f"sweep_dim_values_{gen}_1").set_value("8, 16, 32")

        fill_form(at, "坏的范围", "0.1", "0.01")
        at.button(key="sweep_create_submit").click().run()
        assert any("搜索空间 learning_rate" in e and "low（0.1）必须小于 high（0.01）" in e for e in texts(at.error))
        assert at.text_input(key=f"sweep_name_{gen}").value == "坏的范围", "nothing typed is lost"
        assert at.text_input(key=f"sweep_dim_values_{gen}_1").value == "8, 16, 32"

        at.text_input(key=f"sweep_dim_name_{gen}_0").set_value("lr")
        at.text_input(key=f"sweep_dim_low_{gen}_0").set_value("1e-5")
        at.text_input(key=f"sweep_dim_high_{gen}_0").set_value("1e-2")
        at.button(key="sweep_create_submit").click().run()
        assert any("搜索空间 lr" in e and "是否想写 learning_rate" in e for e in texts(at.error)), texts(at.error)
        assert client.list_sweeps(project.id) == [], "nothing stored on a refusal"

        at.text_input(key=f"sweep_dim_name_{gen}_0").set_value("learning_rate")
        labelled(at.selectbox, "采样器").select("random")
        labelled(at.number_input, "最多试验数").set_value(6)
        labelled(at.number_input, "随机种子（可选）").set_value(3)
        at.button(key="sweep_create_submit").click().run()
        assert not at.exception, [e.message for e in at.exception]
        [summary] = client.list_sweeps(project.id)
        created = client.get_sweep(project.id, summary.id)
        assert created.name == "坏的范围" and created.max_trials == 6 and created.seed == 3
        assert created.sampler.value == "random" and created.pruner.value == "asha"
        assert {name: d.model_dump(exclude_none=True) for name, d in created.space.items()} == {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "batch_size": {"type": "choice", "values": [8, 16, 32], "log": False},
        }
        assert created.template["hyperparameters"] == TEMPLATE["hyperparameters"] and created.rungs == [5, 15, 45]
        assert any(f"已创建调参 {created.name}" in s for s in texts(at.success))
        assert generation(at) != gen and at.text_input(key=f"sweep_name_{generation(at)}").value == "", "form cleared"


def test_a_trial_run_page_names_its_sweep_trial_and_rung(console_env, finished):
    client, project, sweep, runs = finished
    at = open_console("run", project_id=project.id, run_id=runs["0"][1])
    [line] = [link for link in at.page_link if "的试验" in link.label]
    assert line.label.startswith(f"调参 {sweep.name} 的试验 0（第 1 层，训练到第 15 步后")
    assert line.proto.query_string == f"project_id={project.id}&sweep_id={sweep.id}"
