"""Schemathesis against the real API process: no 5xx, and every answer is documented in the OpenAPI document.

Cases come from the document `create_app()` builds (one test per operation); every request goes over HTTP to
a uvicorn process on a real DuckDB file, and `test_the_served_document_is_the_one_tested` pins that process
to serve that same document. Generation is bounded and derandomized with a fixed seed so the file repeats
exactly and finishes in well under three minutes on two cores.
"""

import uuid

import httpx
import pytest
import schemathesis
from conftest import ApiProcess
from schemathesis import checks

from ltm.api.app import create_app

SEED = 20240601
MAX_EXAMPLES = 25
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]

DOCUMENT = create_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.seed = SEED
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    api = ApiProcess(tmp_path_factory.mktemp("schemathesis") / "home", LTM_CANCEL_WAIT_SECONDS="0").start()
    yield api
    if api.process.poll() is None:
        api.stop()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def existing_ids(http: httpx.Client) -> dict[str, str]:
    """A fresh project, queued run and checkpoint, so generated requests also reach real resources."""
    project = http.post("/projects", json={"name": f"模式测试-{uuid.uuid4().hex[:8]}", "owner": "测试"}).json()
    run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}).json()
    checkpoint = http.post(
        f"/projects/{project['id']}/runs/{run['id']}/artifacts",
        json={"type": "checkpoint", "name": "c", "step": 1, "path": f"s3://artifacts/{project['id']}/{run['id']}/c"},
    ).json()
    return {
        "project_id": project["id"],
        "run_id": run["id"],
        "artifact_id": checkpoint["id"],
        "source_artifact_id": checkpoint["id"],
    }


@schema.parametrize()
def test_generated_requests_get_documented_answers_and_no_server_error(case, server):
    case.call_and_validate(base_url=server.url, checks=CHECKS)


@schema.include(path_regex=r"\{").parametrize()
def test_generated_requests_on_existing_resources_get_documented_answers(case, server, http):
    ids = existing_ids(http)
    for parameters in (case.path_parameters, case.query):
        for name in set(parameters or {}) & set(ids):
            parameters[name] = ids[name]
    case.call_and_validate(base_url=server.url, checks=CHECKS)


def test_the_served_document_is_the_one_tested(http):
    assert http.get("/openapi.json").json() == DOCUMENT


def test_every_operation_documents_its_errors_with_our_shapes():
    shapes = {"ErrorBody", "ValidationErrorBody"}
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in shapes, (method, path, status)
            if "requestBody" in operation:
                assert {"413", "415", "422"} <= set(operation["responses"]), (method, path)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)
