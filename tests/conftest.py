from pathlib import Path

import httpx
import pytest

from ltm import Client, testing
from ltm.testing import ROOT, LtmSystem, answers, free_port, wait_until  # noqa: F401  (re-exported to tests)


class ApiProcess(testing.ApiProcess):
    """The real API in its own process, with the tests' defaults: short cancel wait, an artifact root URL."""

    def __init__(self, home: Path, **env: str) -> None:
        super().__init__(home, **{"LTM_CANCEL_WAIT_SECONDS": "1", "LTM_ARTIFACT_ROOT": "s3://artifacts", **env})


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
