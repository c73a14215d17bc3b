"""Repeated actions answer with the current state: a user clicking 取消 twice never sees a 500."""

import httpx
import pytest

from ltm.testing import ApiProcess


@pytest.fixture(scope="module")
def quick_cancel_api(tmp_path_factory):
    api = ApiProcess(tmp_path_factory.mktemp("repeat"), LTM_CANCEL_WAIT_SECONDS="0.2").start()
    yield api
    api.stop()


def test_a_second_cancel_while_cancelling_answers_the_current_state(quick_cancel_api):
    with httpx.Client(base_url=quick_cancel_api.url, timeout=30) as http:
        project = http.post("/projects", json={"name": "重复取消", "owner": "小李"}).json()
        run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
        base = f"/projects/{project['id']}/runs/{run['id']}"
        assert http.patch(base, json={"status": "运行中"}).status_code == 200
        first = http.post(base + "/cancel")
        assert first.status_code == 202 and first.json()["status"] == "取消中"
        for _ in range(3):
            again = http.post(base + "/cancel")
            assert again.status_code == 202 and again.json()["status"] == "取消中"
        assert http.patch(base, json={"status": "已取消"}).status_code == 200
        finished = http.post(base + "/cancel")
        assert finished.status_code == 409 and "已结束" in finished.json()["detail"]
