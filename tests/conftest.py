import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ltm import Client
from ltm.harness import ROOT, LtmSystem, answers, free_port, wait_until  # noqa: F401  (re-exported to tests)


class ApiProcess:
    """The real API served by uvicorn in its own process, on a real DuckDB file."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LTM_HOME": str(home), "LTM_CANCEL_WAIT_SECONDS": "1",
                    "LTM_ARTIFACT_ROOT": "s3://artifacts", **env}
        self.env.pop("LTM_API_URL", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> "ApiProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ltm.cli", "api", "--port", str(self.port)], cwd=ROOT, env=self.env,
        )
        wait_until(self._healthy, timeout=60, message="the API to answer /health")
        return self

    def _healthy(self) -> bool:
        assert self.process.poll() is None, "API process exited during start-up"
        return answers(self.url + "/health")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)


@pytest.fixture
def api_server(tmp_path):
    server = ApiProcess(tmp_path / "home").start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One API process shared by the tests of a module (each test makes its own uniquely named data)."""
    api = ApiProcess(tmp_path_factory.mktemp("api") / "home").start()
    yield api
    if api.process.poll() is None:
        api.stop()


@pytest.fixture
def shared_http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def http(api_server):
    with httpx.Client(base_url=api_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def client(api_server):
    with Client(api_server.url) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def ltm_system(tmp_path_factory):
    system = LtmSystem(tmp_path_factory.mktemp("system") / "home", LTM_STALE_AFTER_SECONDS="8").start()
    yield system
    if system.process.poll() is None:
        system.stop()
