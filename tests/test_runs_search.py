"""`GET /projects/{id}/runs` filters by status, name and hyperparameter, sorts by a column or a metric (last, min,
max) and pages, with the number that match in X-Total-Count; the SDK's `search_runs` reads it as a page."""

from datetime import datetime, timezone

import pytest

from tests.helpers import unique


@pytest.fixture
def project_with_runs(shared_client):
    client = shared_client
    project = client.create_project(name=unique("运行检索"), owner="检索")
    runs = []
    for index, (lr, losses) in enumerate([(0.1, [3.0, 1.0, 2.0]), (0.01, [2.5, 2.0]), (0.1, [4.0]), (0.001, [])]):
        run = client.create_run(
            project.id,
            name=f"{'对照' if index == 3 else '扫描'}-{index}",
            model="m",
            dataset="d",
            hyperparameters={"learning_rate": lr, "optimizer": "adamw" if index % 2 else "sgd"},
            entrypoint="python train.py",  # a script run: any hyperparameter names, here a string-valued one
        )
        now = datetime.now(timezone.utc).isoformat()
        points = [{"name": "eval_loss", "step": step, "value": v, "timestamp": now} for step, v in enumerate(losses)]
        if points:
            sent = client.http.post(
                f"/projects/{project.id}/runs/{run.id}/metrics", json={"batch_id": "b", "points": points}
            )
            assert sent.status_code == 200, sent.text
        runs.append(run)
    client.report(project.id, runs[0].id, status="运行中")
    client.report(project.id, runs[2].id, status="运行中")
    client.report(project.id, runs[2].id, status="失败")
    return client, project, runs


def _names(page) -> list[str]:
    return [run.name for run in page.items]


def test_filters_sorts_and_pages_with_the_total(project_with_runs):
    client, project, runs = project_with_runs
    everything = client.search_runs(project.id, limit=None)
    assert everything.total == 4 and _names(everything) == ["扫描-0", "扫描-1", "扫描-2", "对照-3"]
    assert _names(client.search_runs(project.id, sort="-created_at")) == ["对照-3", "扫描-2", "扫描-1", "扫描-0"]

    page = client.search_runs(project.id, sort="-created_at", limit=2, offset=2)
    assert page.total == 4 and _names(page) == ["扫描-1", "扫描-0"]
    assert client.search_runs(project.id, limit=2, offset=10).items == []

    assert _names(client.search_runs(project.id, status=["运行中", "失败"])) == ["扫描-0", "扫描-2"]
    assert _names(client.search_runs(project.id, q="对照")) == ["对照-3"]
    assert _names(client.search_runs(project.id, hyperparameters={"learning_rate": 0.1})) == ["扫描-0", "扫描-2"]
    both = client.search_runs(project.id, hyperparameters={"learning_rate": 0.1, "optimizer": "sgd"})
    assert both.total == 2 and _names(both) == ["扫描-0", "扫描-2"]

    # eval_loss: run 0 last 2.0 (min 1.0, max 3.0), run 1 last 2.0 (min 2.0), run 2 last 4.0, run 3 none
    assert _names(client.search_runs(project.id, sort="metric:eval_loss:min")) == [
        "扫描-0",
        "扫描-1",
        "扫描-2",
        "对照-3",
    ]
    assert _names(client.search_runs(project.id, sort="-metric:eval_loss:max")) == [
        "扫描-2",
        "扫描-0",
        "扫描-1",
        "对照-3",
    ], "runs without the metric come last either way"
    assert _names(client.search_runs(project.id, sort="-metric:eval_loss")) == ["扫描-2", "扫描-0", "扫描-1", "对照-3"]
    assert client.list_runs(project.id) == everything.items, "no parameters: every run, oldest first"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"sort": "loss"}, "sort：不支持的排序 'loss'"),
        ({"sort": "metric:"}, "sort："),
        ({"hp": "learning_rate"}, "hp：'learning_rate' 应写成 名称=值"),
        ({"status": "跑着"}, "状态"),
        ({"limit": 0}, "每页条数"),
        ({"limit": 1001}, "每页条数"),
        ({"offset": -1}, "跳过条数"),
    ],
)
def test_a_bad_query_is_a_422_naming_the_parameter(project_with_runs, params, named):
    client, project, _ = project_with_runs
    response = client.http.get(f"/projects/{project.id}/runs", params=params)
    assert response.status_code == 422 and named in response.json()["detail"], response.text


def test_parent_lists_the_runs_resumed_from_a_run(shared_client):
    project = shared_client.create_project(name=unique("谱系"), owner="测试")
    parent = shared_client.create_run(project.id, model="m", dataset="d", hyperparameters={"num_epochs": 2})
    other = shared_client.create_run(project.id, model="m", dataset="d")
    checkpoint = shared_client.register_artifact(
        project.id,
        parent.id,
        type="checkpoint",
        name="第 10 步检查点",
        path=f"s3://artifacts/{project.id}/{parent.id}/step-10",
        step=10,
    )
    children = [shared_client.resume_run(project.id, parent.id, checkpoint.id) for _ in range(2)]

    found = shared_client.search_runs(project.id, parent=parent.id)
    assert [run.id for run in found.items] == [child.id for child in children] and found.total == 2
    assert shared_client.search_runs(project.id, parent=other.id).total == 0
