"""GPU inventory: LTM_GPUS declares devices, hosts register and refresh them, GET /resources shows what is online."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from ltm import Client
from ltm.client import ApiError
from ltm.gpus import parse_declared
from ltm.settings import Settings
from ltm.vocabulary import field_label
from tests.conftest import ROOT, LtmSystem, wait_until
from tests.helpers import cli_token


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("A100:4", [("sim-h-A100-0", 0, "A100", 81920), *[(f"sim-h-A100-{i}", i, "A100", 81920) for i in (1, 2, 3)]]),
        ("a100:1,H200:1", [("sim-h-A100-0", 0, "A100", 81920), ("sim-h-H200-1", 1, "H200", 143771)]),
        (" L40S : 1 , T4:1", [("sim-h-L40S-0", 0, "L40S", 46068), ("sim-h-T4-1", 1, "T4", 15360)]),
        ("RTX4090:1:24564", [("sim-h-RTX4090-0", 0, "RTX4090", 24564)]),
        ("A10:1,V100:1", [("sim-h-A10-0", 0, "A10", 23028), ("sim-h-V100-1", 1, "V100", 32768)]),
        ("A100:0", []),
    ],
)
def test_ltm_gpus_declares_devices_with_stable_ids_indexes_and_memory(value, expected):
    devices = [(d.id, d.index, d.model, d.memory_mb) for d in parse_declared(value, "h")]
    assert devices == expected
    assert parse_declared(value, "h") == parse_declared(value, "h")


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("A100", "'A100' 不是 型号:数量"),
        ("B200:2", "未知的 GPU 型号 B200（已知：A100、H100、H200、L40S、A10、T4、V100）"),
        ("A100:x", "A100 的数量 'x' 不是整数"),
        ("A100:-1", "A100 的数量 -1 不能为负数"),
        ("A100:2,", "有空的项"),
        ("A100:1,a100:2", "型号 A100 出现了不止一次"),
        ("X:2:0", "X 的显存必须大于 0"),
        ("A1 00:2", "型号 'A1 00' 只能包含"),
        ("A100:1:2:3", "不是 型号:数量 或 型号:数量:显存MiB"),
    ],
)
def test_a_malformed_ltm_gpus_is_refused_in_chinese_naming_the_variable(value, named):
    with pytest.raises(ValueError) as error:
        parse_declared(value, "h")
    assert str(error.value).startswith(f"LTM_GPUS={value!r} 无法解析")
    assert named in str(error.value)


def test_the_host_name_defaults_to_the_machine_and_ltm_host_name_overrides_it():
    assert Settings(host_name=None).host_label == socket.gethostname()
    assert Settings(host_name="gpu-01").host_label == "gpu-01"


def _devices(spec: str, host: str):
    return parse_declared(spec, host)


def test_a_host_registers_reregisters_replacing_its_devices_and_goes_offline_when_silent(start_api, tmp_path):
    api = start_api(tmp_path / "home", LTM_HOST_OFFLINE_SECONDS="1.5")
    client = Client(api.url)
    assert client.list_resources().hosts == []

    first = client.register_host("gpu-01", _devices("A100:4,H100:2", "gpu-01"), work_queue="queue-a")
    assert first.online and first.work_queue == "queue-a"
    assert [(d.index, d.model, d.memory_mb) for d in first.devices][::3] == [(0, "A100", 81920), (3, "A100", 81920)]
    client.register_host("gpu-02", _devices("T4:1", "gpu-02"))

    again = client.register_host("gpu-01", _devices("A100:2", "gpu-01"), work_queue="queue-b")
    assert [d.id for d in again.devices] == ["sim-gpu-01-A100-0", "sim-gpu-01-A100-1"]  # replaced, not merged
    assert again.work_queue == "queue-b" and again.registered_at == first.registered_at
    assert again.last_seen_at > first.last_seen_at
    overview = client.list_resources()
    assert [h.name for h in overview.hosts] == ["gpu-01", "gpu-02"]
    assert [len(h.devices) for h in overview.hosts] == [2, 1]
    assert overview.offline_after_seconds == 1.5

    def online() -> dict[str, bool]:
        return {h.name: h.online for h in client.list_resources().hosts}

    wait_until(lambda: online() == {"gpu-01": False, "gpu-02": False}, timeout=15, message="silent hosts offline")
    assert [len(h.devices) for h in client.list_resources().hosts] == [2, 1]  # offline hosts keep their inventory
    assert client.register_host("gpu-01", _devices("A100:2", "gpu-01")).online
    assert online() == {"gpu-01": True, "gpu-02": False}

    with pytest.raises(ApiError) as error:  # one device, one host
        client.register_host("gpu-03", _devices("T4:1", "gpu-02"))
    assert error.value.status_code == 409 and "sim-gpu-02-T4-0（主机 gpu-02）" in error.value.detail
    assert client.register_host("gpu-03", []).devices == []

    refused = [
        ("bad host", {"devices": []}, "host"),
        ("gpu-04", {"devices": [{"id": "x", "index": 0, "model": "A100", "memory_mb": 1}] * 2}, "devices 中设备ID重复"),
        ("gpu-04", {"devices": [{"id": "x", "index": -1, "model": "A100", "memory_mb": 1}]}, "devices.0.index"),
        ("gpu-04", {"devices": [], "extra": 1}, "extra"),
    ]
    for host, body, named in refused:
        response = client.http.put(f"/hosts/{host}", json=body)
        assert response.status_code == 422 and field_label(named) in response.json()["detail"], response.text


def test_only_admins_register_hosts_and_the_agent_reports_with_an_admin_token(start_api, tmp_path):
    home = tmp_path / "home"
    admin_token = cli_token(home, "管理员", "admin")
    api = start_api(home, LTM_AUTH="true")
    admin = Client(api.url, token=admin_token)
    member = Client(api.url, token=admin.create_token("小李", "member").token)
    viewer = Client(api.url, token=admin.create_token("小王", "viewer").token)
    for caller in (member, viewer):
        with pytest.raises(ApiError) as error:
            caller.register_host("gpu-01", _devices("A100:1", "gpu-01"))
        assert error.value.status_code == 403 and "登记 GPU 主机" in error.value.detail
    with pytest.raises(ApiError) as error:
        Client(api.url).list_resources()
    assert error.value.status_code == 401
    assert viewer.list_resources().hosts == []

    env = {**os.environ, "LTM_API_URL": api.url, "LTM_TOKEN": admin_token, "LTM_GPUS": "H100:2"}
    env.update(LTM_HOST_NAME="agent-host", LTM_HOST_REPORT_SECONDS="0.2", LTM_HOME=str(tmp_path / "agent"))
    agent = subprocess.Popen(
        [sys.executable, "-m", "ltm.cli", "host"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        hosts = wait_until(lambda: viewer.list_resources().hosts, timeout=60, message="the agent to register")
        assert [(h.name, [d.id for d in h.devices]) for h in hosts] == [
            ("agent-host", ["sim-agent-host-H100-0", "sim-agent-host-H100-1"])
        ]
        seen = hosts[0].last_seen_at
        wait_until(lambda: viewer.list_resources().hosts[0].last_seen_at > seen, message="a heartbeat")
    finally:
        agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0
    assert "已向" in agent.stdout.read()


def test_ltm_up_refuses_a_malformed_ltm_gpus_before_starting_anything(tmp_path):
    env = {**os.environ, "LTM_GPUS": "A100:four"}
    done = subprocess.run(
        [sys.executable, "-m", "ltm.cli", "up", "--home", str(tmp_path / "home")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "LTM_GPUS='A100:four' 无法解析" in done.stderr
    assert not (tmp_path / "home" / "logs").exists()


def test_ltm_up_reports_the_declared_gpus_of_the_local_host(tmp_path):
    system = LtmSystem(tmp_path / "home", LTM_GPUS="A100:4,H100:2").start()
    try:
        client = Client(system.api_url)
        host = socket.gethostname()

        def local_host():
            found = [h for h in client.list_resources().hosts if h.name == host]
            return found[0] if found and found[0].online and len(found[0].devices) == 6 else None

        registered = wait_until(local_host, timeout=60, message="ltm up to register the local host's GPUs")
        assert [d.model for d in registered.devices] == ["A100"] * 4 + ["H100"] * 2
        assert [d.index for d in registered.devices] == list(range(6))
        assert registered.work_queue == "default"
    finally:
        assert system.stop() == 0, system.logs()
    assert system.processes() == []
