from pathlib import Path

import httpx
import pytest

from ltm import Client, testing
from ltm.testing import ROOT, LtmSystem, answers, free_port, wait_until  # noqa: F401  (re-exported to tests)


class ApiProcess(testing.ApiProcess):
    """The real API in its own process, with the tests' defaults: short cancel wait, an artifact root URL."""

    def __init__(self, home: Path, **env: str) -> None:
        super().__init__(home, **{"LTM_CANCEL_WAIT_SECONDS": "1", "LTM_ARTIFACT_ROOT": "s3://artifacts", **env})


# Two kinds of API server. Most tests use the one shared API of the whole session (`shared_api`, `shared_http`,
# `shared_client`) and give what they create unique names (tests/helpers.py). A test that needs an empty store of its
# own, or one whose store it inspects as a whole, asks for a fresh server (`fresh_api`, `fresh_http`, `fresh_client`).


@pytest.fixture(scope="session")
def shared_api(tmp_path_factory):
    """One API process shared by every test of the session (each test makes its own uniquely named data)."""
    api = ApiProcess(tmp_path_factory.mktemp("shared-api") / "home").start()
    yield api
    if api.process.poll() is None:
        api.stop()


@pytest.fixture
def shared_http(shared_api):
    with httpx.Client(base_url=shared_api.url, timeout=30) as client:
        yield client


@pytest.fixture
def shared_client(shared_api):
    with Client(shared_api.url) as sdk:
        yield sdk


@pytest.fixture
def fresh_api(tmp_path):
    """An API process of the test's own, on an empty store under tmp_path."""
    server = ApiProcess(tmp_path / "home").start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def fresh_http(fresh_api):
    with httpx.Client(base_url=fresh_api.url, timeout=30) as client:
        yield client


@pytest.fixture
def fresh_client(fresh_api):
    with Client(fresh_api.url) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def ltm_system(tmp_path_factory):
    system = LtmSystem(tmp_path_factory.mktemp("system") / "home", LTM_STALE_AFTER_SECONDS="8").start()
    yield system
    if system.process.poll() is None:
        system.stop()


@pytest.fixture
def start_api():
    """Start API processes, each on a home the test names; those still running are stopped after the test."""
    started = []

    def start(home: Path, **env: str) -> ApiProcess:
        started.append(ApiProcess(home, **env).start())
        return started[-1]

    yield start
    for api in started:
        if api.process.poll() is None:
            api.stop()


@pytest.fixture
def fresh_cache():
    """Streamlit's cached SDK clients cleared around a console test, so each test talks to the API it sets."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def console_env(shared_api, monkeypatch, fresh_cache):
    """The console (AppTest) talks to the shared API server."""
    monkeypatch.setenv("LTM_API_URL", shared_api.url)
    return shared_api
