"""Rules that hold by construction: LTM_* settings are read in one place; tokens are needed beyond loopback;
the SDK answers with contract models."""

import ast
import inspect
import typing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from ltm.api.app import create_app
from ltm.client import Client
from ltm.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("ltm", "api", "flows", "console", "store")


def _reads_ltm_variable(node: ast.AST) -> bool:
    def ltm_name(arg: ast.AST) -> bool:
        return isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("LTM_")

    def process_environment(value: ast.AST) -> bool:
        return ast.unparse(value) in ("os.environ", "environ")

    if isinstance(node, ast.Call) and node.args and ltm_name(node.args[0]):
        func = ast.unparse(node.func)
        return func in ("os.getenv", "getenv") or (
            isinstance(node.func, ast.Attribute) and process_environment(node.func.value) and node.func.attr == "get"
        )
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.ctx, ast.Load)
        and process_environment(node.value)
        and ltm_name(node.slice)
    )


def test_every_ltm_variable_is_read_through_settings():
    readers = []
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "ltm" / "settings.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            readers += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree) if _reads_ltm_variable(n)]
    assert not readers, readers


def test_the_checker_finds_a_direct_read():
    tree = ast.parse('import os\nos.environ.get("LTM_API_URL")\nos.environ["LTM_HOME"]\nos.getenv("LTM_TOKEN")')
    assert sum(_reads_ltm_variable(n) for n in ast.walk(tree)) == 3


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(Settings(home=tmp_path_factory.mktemp("guard"), launcher="none", auth=False))


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.7.8", "[2001:db8::1]"])
def test_a_request_that_arrived_over_the_network_needs_a_token_even_with_auth_off(app, address):
    with TestClient(app, base_url=f"http://{address}:8000") as http:
        refused = http.get("/projects")
        assert refused.status_code == 401 and "令牌" in refused.json()["detail"]
        assert http.post("/projects", json={"name": "网络", "owner": "x"}).status_code == 401


@pytest.mark.parametrize("address", ["127.0.0.1", "[::1]", "ltm.local"])
def test_loopback_and_in_process_requests_keep_the_no_token_default(app, address):
    with TestClient(app, base_url=f"http://{address}:8000") as http:
        assert http.get("/projects").status_code == 200


def test_every_sdk_method_returns_a_contract_model():
    """What the API answers reaches Python callers typed: a model of ltm.models, or a list of them."""
    untyped = {"close", "request", "download_artifact", "download_release"}  # the raw escape hatch, the end, files
    for name, method in inspect.getmembers(Client, inspect.isfunction):
        if name.startswith("_") or name in untyped:
            continue
        returned = typing.get_type_hints(method)["return"]
        model = typing.get_args(returned)[0] if typing.get_origin(returned) is list else returned
        assert isinstance(model, type) and issubclass(model, BaseModel), (name, returned)
        assert model.__module__ == "ltm.models", (name, returned)
