"""The console's GPU pages driven by AppTest against real API processes (no mocks): the 资源 page, a run's queue
place and devices on the run page, and the run form's GPU choices and priority.

Most tests share one API of this module; each registers its own hosts with a GPU model no other test uses, so its
devices, queue and usage rows are its own. Tests of empty or offline inventories start an API of their own.
"""

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from streamlit.testing.v1 import AppTest

from ltm import Client
from ltm.gpus import parse_declared
from ltm.models import LogBatch, LogLine, MetricBatch, MetricPoint
from tests.conftest import ApiProcess, wait_until
from tests.console_helpers import labelled, open_console, open_tab, texts
from tests.helpers import unique

pytestmark = pytest.mark.usefixtures("fresh_cache")

START = datetime.now(timezone.utc) - timedelta(minutes=10)


@pytest.fixture(scope="module")
def gpu_api(tmp_path_factory):
    """Runs are not launched (the test plays the flow); hosts stay online for the whole module."""
    api = ApiProcess(
        tmp_path_factory.mktemp("gpu-console") / "home", LTM_RECONCILE_SECONDS="0.5", LTM_HOST_OFFLINE_SECONDS="600"
    ).start()
    yield api
    if api.process.poll() is None:
        api.stop()


@pytest.fixture
def client(gpu_api, monkeypatch):
    """The SDK on the module's API, which the console talks to as well."""
    monkeypatch.setenv("LTM_API_URL", gpu_api.url)
    with Client(gpu_api.url) as sdk:
        yield sdk


def gpu_model() -> str:
    """A GPU model (and so a GPU type and queue) no other test registers."""
    return f"T{uuid.uuid4().hex[:8].upper()}"


def register(client: Client, host: str, model: str, count: int) -> None:
    client.register_host(host, parse_declared(f"{model}:{count}:40960", host))


def table_with(at: AppTest, column: str):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with column {column!r}"
    return found[0]


def device_table(at: AppTest, host: str):
    """The devices table of `host` (its simulated device ids name it)."""
    for frame in at.dataframe:
        ids = frame.value.get("设备 ID")
        if ids is not None and ids.str.startswith(f"sim-{host}-").all():
            return frame.value
    raise AssertionError(f"no devices table for host {host}")


def gpu_scene(client: Client):
    """Host A (2 devices, both held by one running run) and host B (1 device of another model, free); two runs wait
    for A's model, the later one first by priority."""
    model, other = gpu_model(), gpu_model()
    host_a, host_b = unique("gpu-a"), unique("gpu-b")
    register(client, host_a, model, 2)
    register(client, host_b, other, 1)
    project = client.create_project(unique("GPU 项目"), "平台组")
    held = client.create_run(project.id, "llama-2-7b", "语料", name="双卡训练", resources=gpu(model, 2))
    client.report(project.id, held.id, status="运行中")
    normal = client.create_run(project.id, "llama-2-7b", "语料", name="普通", resources=gpu(model, 1))
    urgent = client.create_run(project.id, "llama-2-7b", "语料", name="加急", resources=gpu(model, 1), priority=50)
    return model, other, host_a, host_b, project, held, client.get_run(project.id, normal.id), urgent


def gpu(model: str, count: int) -> dict:
    return {"gpu_type": model, "gpu_count": count}


# 资源


def test_resources_page_shows_hosts_holders_and_the_queue_in_order(client):
    model, other, host_a, host_b, project, held, normal, urgent = gpu_scene(client)
    at = open_console("resources")

    assert at.title[0].value == "资源"
    headings = texts(at.markdown)
    assert f"#### {host_a} :green-badge[在线]" in headings and f"#### {host_b} :green-badge[在线]" in headings
    devices = device_table(at, host_a)
    assert devices[["序号", "型号", "显存", "状态", "运行"]].to_dict("records") == [
        {"序号": 0, "型号": model, "显存": "40.0 GB", "状态": "占用", "运行": "双卡训练"},
        {"序号": 1, "型号": model, "显存": "40.0 GB", "状态": "占用", "运行": "双卡训练"},
    ]
    assert set(devices["详情"]) == {f"run?project_id={project.id}&run_id={held.id}"}
    free = device_table(at, host_b)
    assert free[["型号", "状态", "运行", "详情"]].to_dict("records") == [
        {"型号": other, "状态": "空闲", "运行": "—", "详情": None}
    ]

    queue = table_with(at, "等待原因")
    mine = queue[queue["GPU 请求"] == f"1 × {model}"]
    assert mine[["位置", "运行", "优先级"]].to_dict("records") == [
        {"位置": 1, "运行": "加急", "优先级": 50},
        {"位置": 2, "运行": "普通", "优先级": 0},
    ]
    assert list(mine["等待原因"]) == [f"等待 1 × {model}：空闲 0 / 共 2", normal.queue_reason]
    assert "排在 加急" in normal.queue_reason
    assert list(mine["详情"]) == [
        f"run?project_id={project.id}&run_id={urgent.id}",
        f"run?project_id={project.id}&run_id={normal.id}",
    ]


def test_resources_page_sums_gpu_hours_by_project_user_and_type(client):
    model, _, _, _, project, *_ = gpu_scene(client)
    wait_until(
        lambda: any(
            row.key == project.id and row.gpu_hours_allocated > 0 and row.queue_wait_hours > 0
            for row in client.resource_usage("project").rows
        ),
        message="some lease and wait time to sum",
    )
    at = open_console("resources")

    usage = table_with(at, "分配 GPU 小时")
    row = usage[usage["项目"] == project.name].iloc[0]
    assert row["运行数"] == 3 and row["详情"] == f"project?project_id={project.id}"
    assert row["分配 GPU 小时"] > 0 and row["排队等待小时"] > 0
    assert labelled(at.selectbox, "时间范围").value == "最近 7 天"

    labelled(at.selectbox, "分组").select("gpu_type").run()
    by_type = table_with(at, "分配 GPU 小时")
    assert "详情" not in by_type.columns
    assert by_type[by_type["GPU 型号"] == model]["运行数"].tolist() == [3]

    labelled(at.selectbox, "分组").select("user").run()
    labelled(at.selectbox, "时间范围").select("全部").run()
    by_user = table_with(at, "分配 GPU 小时")
    assert by_user[by_user["用户"] == "本地用户"]["运行数"].iloc[0] >= 3
    assert any(caption.startswith("统计区间 最早记录 至") for caption in texts(at.caption))


def test_resources_page_explains_an_empty_inventory_and_offline_hosts(start_api, tmp_path, monkeypatch):
    api = start_api(tmp_path / "home", LTM_HOST_OFFLINE_SECONDS="1")
    monkeypatch.setenv("LTM_API_URL", api.url)
    at = open_console("resources")
    [empty] = texts(at.info)
    assert "还没有登记 GPU 主机" in empty and "LTM_GPUS" in empty and "ltm host" in empty
    assert "没有等待 GPU 的运行。" in texts(at.caption)
    assert "所选时间范围内没有 GPU 使用或排队记录。" in texts(at.caption)

    with Client(api.url) as client:
        client.register_host("cpu-only", [])
        at.run()
        assert any("已登记的主机上没有 GPU" in text for text in texts(at.info))
        assert "这台主机没有登记 GPU。" in texts(at.caption)

        register(client, "gpu-old", "A100", 1)
        wait_until(
            lambda: not next(h for h in client.list_resources().hosts if h.name == "gpu-old").online,
            message="the silent host to go offline",
        )
        at.run()
    assert not at.info
    assert "#### gpu-old :red-badge[离线]" in texts(at.markdown)
    assert any(text.startswith("超过 1 秒未上报") for text in texts(at.caption))


def test_resources_page_shows_whether_the_api_keeps_up_with_the_runs_logs_and_metrics(start_api, tmp_path, monkeypatch):
    api = start_api(tmp_path / "home")
    monkeypatch.setenv("LTM_API_URL", api.url)
    at = open_console("resources")
    assert "最近一分钟没有写入 · 排队中 0 个批次" in texts(at.caption)

    with Client(api.url) as client:
        project = client.create_project(name=unique("写入状态"), owner="运维")
        run = client.create_run(project.id, model="m", dataset="d")
        for index in range(3):
            lines = [LogLine(timestamp=START + timedelta(seconds=index), message=f"第 {index} 行")]
            client.send_logs(project.id, run.id, LogBatch(batch_id=f"b{index}", lines=lines))
        window = client.health().ingest.last_minute
    at.run()
    [summary] = [text for text in texts(at.caption) if text.startswith("最近 60 秒")]
    assert f"{window.commits} 次组提交，写入 3 个批次或报告" in summary
    assert f"一次组提交耗时中位数 {window.commit_ms_p50:g} ms" in summary and "排队中 0 个批次" in summary


# 运行详情


def device_points(run, step_count: int = 5) -> list[MetricPoint]:
    return [
        MetricPoint(name=name, step=step, value=value, timestamp=START + timedelta(seconds=step))
        for step in range(step_count)
        for position in range(len(run.devices))
        for name, value in (
            (f"gpu/{position}/utilization", 0.5 + position / 10),
            (f"gpu/{position}/memory_mb", 30000.0 + position),
        )
    ] + [MetricPoint(name="train_loss", step=step, value=3 - step / 10, timestamp=START) for step in range(5)]


def test_run_page_shows_a_waiting_runs_place_and_reason(client):
    *_, normal, urgent = gpu_scene(client)
    at = open_console("run", project_id=normal.project_id, run_id=normal.id)
    [notice] = texts(at.warning)
    assert notice.startswith("**排队等待 GPU：第 2 位**（同型号队列，优先级 0）")
    assert normal.queue_reason in notice
    assert any(link.label == "查看 GPU 资源与排队" for link in at.page_link)
    assert "GPU 设备" not in texts(at.subheader)

    at = open_console("run", project_id=urgent.project_id, run_id=urgent.id)
    assert texts(at.warning)[0].startswith("**排队等待 GPU：第 1 位**（同型号队列，优先级 50）")


def test_run_page_shows_each_device_and_its_charts(client):
    _, _, host_a, _, project, held, *_ = gpu_scene(client)
    client.send_metrics(project.id, held.id, MetricBatch(batch_id=f"{held.id}-gpu", points=device_points(held)))
    client.report(project.id, held.id, gpu_utilization=0.55)
    at = open_console("run", project_id=project.id, run_id=held.id)

    assert not at.warning
    assert "GPU 设备" in texts(at.subheader)
    devices = table_with(at, "CUDA 序号")
    assert devices[["CUDA 序号", "设备 ID", "主机"]].to_dict("records") == [
        {"CUDA 序号": 0, "设备 ID": held.devices[0], "主机": host_a},
        {"CUDA 序号": 1, "设备 ID": held.devices[1], "主机": host_a},
    ]
    assert devices["利用率"].tolist() == pytest.approx([0.5, 0.6])
    assert devices["显存已用（MiB）"].tolist() == [30000.0, 30001.0]
    assert [m.label for m in at.metric] == ["GPU 利用率", "train_loss"], "device series are not training metrics"
    assert len(at.get("vega_lite_chart")) == 1 + 2 * 2, "train_loss, then utilisation and memory per device"
    assert f"GPU 1：{held.devices[1]}" in texts(at.caption)

    client.report(project.id, held.id, status="已完成")
    at = open_console("run", project_id=project.id, run_id=held.id)
    assert table_with(at, "CUDA 序号")["设备 ID"].tolist() == held.devices, "a finished run still shows its devices"
    assert any("归还时间" in caption for caption in texts(at.caption))


# 发起运行


def test_run_form_offers_the_registered_gpu_types_and_the_largest_host(client):
    model = gpu_model()
    small, large = unique("gpu-s"), unique("gpu-l")
    register(client, small, model, 2)
    register(client, large, model, 3)
    project = client.create_project(unique("GPU 项目"), "平台组", base_model="llama-2-7b", default_priority=7)
    at = open_console("project", project_id=project.id, tab="发起运行")

    kind = labelled(at.selectbox, "GPU 类型")
    assert f"{model}（空闲 5 / 共 5）" in kind.options
    kind.select(model).run()
    count = labelled(at.number_input, "GPU 数量")
    assert count.value == 1 and count.help.startswith("0 到 3")
    assert any(f"{model}：在线空闲 5 块，共 5 块，单台主机最多 3 块" in caption for caption in texts(at.caption))
    assert labelled(at.number_input, "优先级").value == 7

    labelled(at.number_input, "GPU 数量").set_value(3)
    labelled(at.number_input, "优先级").set_value(20)
    labelled(at.text_input, "数据集 *").set_value("语料")
    at.button(key="start_run_submit").click().run()
    assert not at.error, texts(at.error)
    [run] = client.list_runs(project.id)
    assert (run.resources, run.priority, run.gpu_host, len(run.devices)) == (gpu(model, 3), 20, large, 3)

    labelled(at.selectbox, "GPU 类型").select(model).run()
    assert any(f"{model}：在线空闲 2 块，共 5 块" in caption for caption in texts(at.caption))


def test_run_form_tells_a_waiting_run_its_place(client):
    model = gpu_model()
    register(client, unique("gpu-q"), model, 1)
    project = client.create_project(unique("GPU 项目"), "平台组", base_model="llama-2-7b")
    client.create_run(project.id, "llama-2-7b", "语料", resources=gpu(model, 1))
    at = open_console("project", project_id=project.id, tab="发起运行")
    labelled(at.selectbox, "GPU 类型").select(model).run()
    labelled(at.text_input, "数据集 *").set_value("语料")
    at.button(key="start_run_submit").click().run()
    waiting = next(r for r in client.list_runs(project.id) if r.queue_position)
    assert f"已创建运行 {waiting.name}（排队中），等待 GPU：同型号队列第 1 位" in texts(at.success)
    runs = table_with(open_tab(at, "运行"), "GPU 排队")
    assert runs[runs["名称"].str.contains(f"run_id={waiting.id}#")]["GPU 排队"].tolist() == ["第 1 位"]


def test_project_forms_set_the_default_priority(client):
    owner = unique("小李")
    at = open_console("projects")
    at.text_input(key="new_name").set_value(unique("优先项目"))
    at.text_input(key="new_owner").set_value(owner)
    labelled(at.number_input, "默认优先级").set_value(30)
    at.button(key="create_project_submit").click().run()
    [created] = client.list_projects(owner=owner)
    assert client.get_project(created.id).default_priority == 30

    at = open_console("project", project_id=created.id)
    assert "**默认优先级**：30（越大越先分配 GPU）" in texts(at.markdown)
    labelled(open_tab(at, "编辑").number_input, "默认优先级").set_value(-5)
    at.button(key="edit_project_submit").click().run()
    updated = client.get_project(created.id)
    assert (updated.version, updated.default_priority) == (2, -5)
    assert labelled(open_tab(at, "发起运行").number_input, "优先级").value == -5, (
        "the run form starts from the new default"
    )


# 脚本运行


def test_run_form_starts_a_script_run_and_the_run_page_shows_its_command(client):
    project = client.create_project(unique("脚本项目"), "平台组", base_model="tiny-gpt2")
    at = open_console("project", project_id=project.id, tab="发起运行")
    labelled(at.radio, "训练方式").set_value("自己的脚本").run()
    labelled(at.text_input, "数据集 *").set_value("内置语料")
    labelled(at.text_input, "启动命令 *").set_value("bash train.sh")
    at.button(key="start_run_submit").click().run()
    assert any("启动命令" in text or "entrypoint" in text for text in texts(at.error)), texts(at.error)
    assert client.list_runs(project.id) == []

    labelled(at.text_input, "启动命令 *").set_value("python train.py --max-steps 8")
    labelled(at.text_input, "代码目录（可选）").set_value("examples/hf_tiny_gpt2")
    labelled(at.number_input, "进程数（0 为自动）").set_value(2)
    at.button(key="start_run_submit").click().run()
    assert not at.error, texts(at.error)
    [run] = client.list_runs(project.id)
    assert (run.entrypoint, run.source, run.processes, run.trainer) == (
        "python train.py --max-steps 8",
        "examples/hf_tiny_gpt2",
        2,
        "script",
    )
    client.report(project.id, run.id, code_version="git:0123abcd+dirty")
    page = open_console("run", project_id=project.id, run_id=run.id)
    assert any("脚本 `python train.py --max-steps 8` · 代码版本 git:0123abcd+dirty" in c for c in texts(page.caption))
