"""`ltm up` starts the whole system and Ctrl-C stops all of it cleanly."""

import httpx

from tests.conftest import LtmSystem


def test_up_prints_the_urls_and_ctrl_c_stops_everything(tmp_path):
    system = LtmSystem(tmp_path / "home").start()
    printed = "".join(system.output)
    assert f"http://127.0.0.1:{system.ports['prefect']}" in printed
    assert f"http://127.0.0.1:{system.ports['api']}/docs" in printed
    assert httpx.get(system.api_url + "/health").json()["status"] == "ok"
    assert httpx.get(system.prefect_api_url + "/health").json() is True
    assert len(system.processes()) >= 3

    assert system.stop() == 0
    assert system.processes() == []
    assert (system.home / "ltm.duckdb").exists()
    assert not (system.home / "ltm.duckdb.wal").exists()
