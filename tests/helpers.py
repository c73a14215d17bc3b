"""Helpers shared by the test modules: unique names, projects and runs made over HTTP, the `ltm` CLI.

Tests that share one API server (the `shared_api` fixture) give everything they create a unique name, so they
never see each other's data.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from ltm.flows.artifact_io import ArtifactWriter
from ltm.testing import ROOT


@contextmanager
def prefect_client(api_url: str) -> Iterator[SyncPrefectClient]:
    """Prefect's own client for the server at `api_url`; it retries the 503s a busy server answers."""
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        yield client


def prefect_flow_run(api_url: str, flow_run_id: str) -> FlowRun:
    with prefect_client(api_url) as client:
        return client.read_flow_run(UUID(flow_run_id))


def unique(prefix: str = "项目") -> str:
    """A name no other test uses: `prefix` and ten random hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_project(http: httpx.Client, **fields) -> dict:
    """A project with a unique name and owner (unless `fields` says otherwise), created over HTTP."""
    response = http.post("/projects", json={"name": unique(), "owner": unique("负责人"), **fields})
    assert response.status_code == 201, response.text
    return response.json()


def new_run(http: httpx.Client, project_id: str | None = None, **fields) -> dict:
    """A queued run in `project_id` (in a new project when None), created over HTTP."""
    project_id = project_id or new_project(http)["id"]
    response = http.post(f"/projects/{project_id}/runs", json={"model": "qwen-7b", "dataset": "语料", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def ltm(
    *args: str, api_url: str | None = None, token: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`ltm *args` in a subprocess against `api_url` (none: the embedded store), with `token` if given."""
    env = {**os.environ}
    for key in ("LTM_API_URL", "LTM_TOKEN"):
        env.pop(key, None)
    if api_url:
        env["LTM_API_URL"] = api_url
    if token:
        env["LTM_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "ltm.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def cli_token(home, user: str, role: str) -> str:
    """`ltm token create` while no API holds the store: the embedded store has no one to authenticate yet."""
    env = {**os.environ, "LTM_HOME": str(home)}
    env.pop("LTM_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "ltm.cli", "token", "create", "--user", user, "--role", role],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def stored_checkpoint(client, root, project_id: str, run_id: str, step: int, files: dict[str, bytes]):
    """A checkpoint `step-<step>` written under artifact root `root` as a training flow writes it (files and their
    SHA-256 manifest), and registered by `client` as `第 <step> 步检查点`."""
    written = ArtifactWriter(str(root), project_id, run_id).write_checkpoint(f"step-{step:08d}", files)
    name = f"第 {step} 步检查点"
    return client.register_artifact(
        project_id, run_id, "checkpoint", name, written.path, written.size_bytes, step, written.checksums
    )
