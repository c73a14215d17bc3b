"""GPU admission through the real API: runs wait for free devices of their type, in priority order, never past
the head of their queue, get distinct devices, and give them back at every end."""

from datetime import datetime, timezone

import pytest

from ltm import Client
from ltm.client import ApiError
from ltm.gpus import parse_declared
from ltm.vocabulary import field_label
from tests.conftest import wait_until
from tests.helpers import unique

FAST = {"num_epochs": 1, "steps_per_epoch": 5}


def _register(client: Client, host: str, spec: str) -> None:
    client.register_host(host, parse_declared(spec, host))


@pytest.fixture
def gpu_api(start_api, tmp_path):
    """A fresh API (runs are not launched: the test plays the flow) whose inventory the test registers."""
    api = start_api(tmp_path / "home", LTM_RECONCILE_SECONDS="0.5", LTM_HOST_OFFLINE_SECONDS="300")
    with Client(api.url) as client:
        yield client


def _project(client: Client):
    return client.create_project(name=unique("GPU 调度"), owner="平台组")


def _run(client: Client, project, gpus: str | None, count: int | None = None, **fields):
    resources = {key: value for key, value in (("gpu_type", gpus), ("gpu_count", count)) if value is not None}
    return client.create_run(
        project.id, model="llama-2-7b", dataset="中文语料", hyperparameters=FAST, resources=resources, **fields
    )


def _finish(client: Client, run, status: str = "已完成"):
    client.report(run.project_id, run.id, status="运行中")
    return client.report(run.project_id, run.id, status=status)


def _leases(client: Client) -> dict[str, str]:
    return {d.id: d.run_id for h in client.list_resources().hosts for d in h.devices if d.run_id}


def test_runs_wait_for_free_devices_of_their_type_in_priority_order_and_never_share_one(gpu_api):
    client = gpu_api
    _register(client, "gpu-a", "A100:2")
    _register(client, "gpu-b", "H100:1")
    project = _project(client)

    first = _run(client, project, "A100", 2, name="大任务")
    assert first.devices == ["sim-gpu-a-A100-0", "sim-gpu-a-A100-1"] and first.gpu_host == "gpu-a"
    assert first.queue_position is None and first.queue_reason is None and first.status == "排队中"

    low = _run(client, project, "A100", 1, name="普通")
    assert low.devices == [] and low.queue_position == 1
    assert low.queue_reason == "等待 1 × A100：空闲 0 / 共 2"
    high = _run(client, project, "a100", 1, name="加急", priority=50)
    assert high.priority == 50 and high.queue_position == 1
    low = client.get_run(project.id, low.id)
    assert low.queue_position == 2 and "排在 加急（1 × A100）之后" in low.queue_reason

    other_type = _run(client, project, "H100", 1)
    assert other_type.devices == ["sim-gpu-b-H100-0"], "another type's queue does not hold it"
    cpu = _run(client, project, None)
    assert cpu.devices == [] and cpu.queue_position is None and cpu.queue_reason is None

    queue = client.list_resources().queue
    assert [(q.name, q.queue_position, q.gpu_type, q.gpu_count) for q in queue] == [
        ("加急", 1, "A100", 1),
        ("普通", 2, "A100", 1),
    ]
    assert _leases(client) == {
        "sim-gpu-a-A100-0": first.id,
        "sim-gpu-a-A100-1": first.id,
        "sim-gpu-b-H100-0": other_type.id,
    }
    held = client.list_resources().hosts[0].devices[0]
    assert (held.busy, held.run_name, held.project_id) == (True, "大任务", project.id)

    done = _finish(client, first)
    assert done.devices == ["sim-gpu-a-A100-0", "sim-gpu-a-A100-1"], "a finished run keeps the record"
    assert done.gpu_utilization is None

    def both_admitted():
        runs = [client.get_run(project.id, x.id) for x in (high, low)]
        return runs if all(run.devices for run in runs) else None

    high, low = wait_until(both_admitted, message="both waiting runs to be admitted when the big one ends")
    assert high.devices == ["sim-gpu-a-A100-0"] and low.devices == ["sim-gpu-a-A100-1"]
    assert high.queue_position is None and client.list_resources().queue == []
    assert set(_leases(client).values()) == {high.id, low.id, other_type.id}


def test_the_head_of_a_queue_is_not_overtaken_by_smaller_runs(gpu_api):
    client = gpu_api
    _register(client, "gpu-a", "A100:4")
    project = _project(client)
    running = [_run(client, project, "A100", 1) for _ in range(3)]
    assert all(run.devices for run in running)
    big = _run(client, project, "A100", 4, name="四卡")
    small = _run(client, project, "A100", 1, name="单卡")
    assert big.queue_position == 1 and big.queue_reason == "等待 4 × A100：空闲 1 / 共 4"
    small = client.get_run(project.id, small.id)
    assert small.devices == [] and small.queue_position == 2, "one device is free, but the head goes first"

    for run in running:
        _finish(client, run)
    big = wait_until(lambda: client.get_run(project.id, big.id).devices or None, message="the big run admitted")
    assert len(big) == 4
    assert client.get_run(project.id, small.id).queue_reason == "等待 1 × A100：空闲 0 / 共 4"


def test_every_end_releases_the_lease(gpu_api):
    client = gpu_api
    _register(client, "gpu-a", "A100:1")
    project = _project(client)

    def admitted(run):
        return wait_until(lambda: client.get_run(project.id, run.id).devices or None, message=f"{run.name} admitted")

    holder = _run(client, project, "A100", 1, name="取消前未开始")
    waiting = _run(client, project, "A100", 1, name="排队时取消")
    assert client.cancel_run(project.id, waiting.id).status == "已取消"
    assert client.get_run(project.id, waiting.id).devices == []
    assert client.cancel_run(project.id, holder.id).status == "已取消"  # leased, never started
    assert _leases(client) == {}

    failing = _run(client, project, "A100", 1, name="失败")
    admitted(failing)
    _finish(client, failing, "失败")
    cancelled = _run(client, project, "A100", 1, name="运行中取消")
    admitted(cancelled)
    client.report(project.id, cancelled.id, status="运行中")
    client.report(project.id, cancelled.id, status="已取消")
    deleted = _run(client, project, "A100", 1, name="删除")
    admitted(deleted)
    client.report(project.id, deleted.id, status="运行中")
    client.report(project.id, deleted.id, status="失败")
    client.delete_run(project.id, deleted.id, dry_run=False)
    last = _run(client, project, "A100", 1, name="主机注销")
    admitted(last)
    assert _leases(client) == {"sim-gpu-a-A100-0": last.id}
    client.remove_host("gpu-a")
    assert client.list_resources().hosts == []


def test_requests_no_host_could_hold_are_refused_and_without_an_inventory_nothing_waits(gpu_api):
    client = gpu_api
    project = _project(client)
    seed = _run(client, project, "A100", 4)  # the seed's example: no inventory declared, so no GPU admission
    assert seed.status == "排队中" and seed.queue_position is None and seed.devices == []

    _register(client, "gpu-a", "A100:4")
    _register(client, "gpu-b", "A100:2,T4:1")
    for resources, field, text in [
        (
            {"gpu_type": "A100", "gpu_count": 8},
            "resources.gpu_count",
            "8 块 A100 超过任何一台主机的数量（单台最多 4 块）",
        ),
        (
            {"gpu_type": "H100", "gpu_count": 1},
            "resources.gpu_type",
            "没有登记的主机有 H100；现有：A100（共 6 块）、T4",
        ),
        ({"gpu_type": "T4", "gpu_count": 2}, "resources.gpu_count", "单台最多 1 块"),
    ]:
        with pytest.raises(ApiError) as error:
            client.create_run(project.id, model="m", dataset="d", resources=resources)
        assert error.value.status_code == 422 and error.value.detail.startswith(field) and text in error.value.detail
    assert len(client.list_runs(project.id)) == 1, "nothing is stored for a refused request"


def test_a_host_that_goes_silent_offers_nothing_and_says_so(start_api, tmp_path):
    api = start_api(tmp_path / "home", LTM_RECONCILE_SECONDS="0.5", LTM_HOST_OFFLINE_SECONDS="1")
    client = Client(api.url)
    _register(client, "gpu-a", "A100:1")
    project = _project(client)
    wait_until(lambda: not client.list_resources().hosts[0].online, message="the host to go offline")
    run = _run(client, project, "A100", 1)
    assert (
        run.devices == []
        and run.queue_reason == "等待 1 × A100：有该型号的主机都已离线（离线 1 块），主机恢复上报后再分配"
    )
    _register(client, "gpu-a", "A100:1")
    assert wait_until(lambda: client.get_run(project.id, run.id).devices, message="admitted when it reports again")


def test_usage_sums_gpu_hours_and_queue_wait_per_project_user_and_type(gpu_api):
    client = gpu_api
    _register(client, "gpu-a", "A100:2,T4:1")
    first, second = _project(client), _project(client)
    big = _run(client, first, "A100", 2)
    waiting = _run(client, second, "A100", 1)
    small = _run(client, second, "T4", 1)
    client.report(first.id, big.id, status="运行中")
    client.report(second.id, small.id, status="运行中")
    now = datetime.now(timezone.utc)
    for run, value in ((big, 0.5), (small, 1.0)):
        points = [
            {"name": f"gpu/{i}/utilization", "step": 1, "value": value, "timestamp": now.isoformat()} for i in (0, 1)
        ]
        sent = client.http.post(
            f"/projects/{run.project_id}/runs/{run.id}/metrics", json={"batch_id": "u", "points": points}
        )
        assert sent.status_code == 200, sent.text
    _finish(client, big)
    done = client.get_run(first.id, big.id)
    wait_until(
        lambda: client.get_run(second.id, waiting.id).leased_at, message="the freed A100 leased to the waiting run"
    )
    waited = client.get_run(second.id, waiting.id)

    by_project = {row.key: row for row in client.resource_usage("project").rows}
    held = 2 * (done.released_at - done.leased_at).total_seconds() / 3600
    assert by_project[first.id].label == first.name and by_project[first.id].runs == 1
    assert by_project[first.id].gpu_hours_allocated == pytest.approx(held, rel=1e-6)
    assert by_project[first.id].gpu_hours_used == pytest.approx(held * 0.5, rel=1e-6)
    assert by_project[first.id].queue_wait_hours == pytest.approx(
        (big.leased_at - big.created_at).total_seconds() / 3600, abs=1e-9
    )
    assert by_project[second.id].runs == 2
    assert by_project[second.id].queue_wait_hours >= (waited.leased_at - waited.created_at).total_seconds() / 3600

    by_type = {row.key: row for row in client.resource_usage("gpu_type").rows}
    assert set(by_type) == {"A100", "T4"} and by_type["A100"].runs == 2
    assert [row.key for row in client.resource_usage("user").rows] == ["本地用户"]  # who calls without auth
    later = client.resource_usage("project", since=datetime.now(timezone.utc))
    assert first.id not in {row.key for row in later.rows}, "a lease that ended before `since` is not counted"
    response = client.http.get("/resources/usage", params={"group_by": "team"})
    assert response.status_code == 422 and field_label("group_by") in response.json()["detail"]


def test_a_run_takes_its_projects_default_priority_unless_it_names_one(gpu_api):
    client = gpu_api
    project = client.create_project(name=unique("优先级"), owner="平台组", default_priority=20)
    assert project.default_priority == 20
    assert _run(client, project, None).priority == 20
    assert _run(client, project, None, priority=-5).priority == -5
    assert client.update_project(project.id, default_priority=-10).default_priority == -10
    assert _run(client, project, None).priority == -10
    for body, field in [({"priority": 101}, "priority"), ({"priority": "高"}, "priority")]:
        response = client.http.post(f"/projects/{project.id}/runs", json={"model": "m", "dataset": "d", **body})
        assert response.status_code == 422 and f"{field_label(field)}：" in response.json()["detail"], response.text
    response = client.http.patch(f"/projects/{project.id}", json={"default_priority": 1000})
    assert response.status_code == 422 and field_label("default_priority") in response.json()["detail"]
