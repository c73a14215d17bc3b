"""Run tokens, replayed as attacks against real API processes with auth on (issue 12, items 7, 8 and 10).

A run token does what its flow needs and nothing else; what a run reports comes only from its own flow (or an
admin, audited) and stops when the run ends; Prefect, whose API needs no login, never shows a usable secret.
"""

import os
import subprocess
import sys

import duckdb
import httpx
import pytest
from prefect.client.schemas.actions import WorkPoolUpdate

from ltm import Client
from ltm.models import RunStatus
from tests.conftest import ROOT, ApiProcess, LtmSystem, wait_until
from tests.helpers import cli_token, prefect_client, prefect_flow_run, unique

LINE = {"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "message": "一行"}
POINT = {"name": "train_loss", "step": 1, "value": 0.5, "timestamp": "2026-01-01T00:00:00Z"}


class Site:
    """An API with auth on, no launcher: an admin, the owner 甲, the project member 乙 and the viewer 丙."""

    def __init__(self, base) -> None:
        self.home, self.root = base / "home", base / "artifacts"
        self.root.mkdir(parents=True)
        self.admin_token = cli_token(self.home, "管理员", "admin")
        self.api = ApiProcess(self.home, LTM_AUTH="true", LTM_ARTIFACT_ROOT=str(self.root)).start()
        admin = Client(self.api.url, token=self.admin_token)
        self.tokens = {
            name: admin.create_token(name, role).token
            for name, role in [("甲", "member"), ("乙", "member"), ("丙", "viewer")]
        }
        self.admin = self.user(self.admin_token)

    def user(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def member(self, name: str) -> httpx.Client:
        return self.user(self.tokens[name])

    def project(self, http: httpx.Client, members: list[str] = ()) -> str:
        project = http.post("/projects", json={"name": unique(), "owner": "甲"})
        assert project.status_code == 201, project.text
        http.put(f"/projects/{project.json()['id']}/members", json=list(members))
        return project.json()["id"]

    def run(self, http: httpx.Client, project_id: str) -> str:
        run = http.post(f"/projects/{project_id}/runs", json={"model": "m", "dataset": "语料"})
        assert run.status_code == 201, run.text
        return run.json()["id"]

    def run_token(self, http: httpx.Client, project_id: str, run_id: str) -> httpx.Client:
        issued = http.post(f"/projects/{project_id}/runs/{run_id}/token")
        assert issued.status_code == 201, issued.text
        return self.user(issued.json()["token"])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("run-tokens"))
    yield site
    site.api.stop()


def run_url(project_id: str, run_id: str, suffix: str = "") -> str:
    return f"/projects/{project_id}/runs/{run_id}{suffix}"


def reports(site: Site, project_id: str, run_id: str, folder_name: str) -> dict:
    """One of each write that a run's flow makes: status and progress, a log line, a metric point, an artifact."""
    folder = site.root / project_id / run_id / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    return {
        ("PATCH", ""): {"status": "已完成"},
        ("POST", "/logs"): {"batch_id": unique("logs"), "lines": [LINE]},
        ("POST", "/metrics"): {"batch_id": unique("metrics"), "points": [POINT]},
        ("POST", "/report"): {"logs": {"batch_id": unique("report"), "lines": [LINE]}, "progress": {"current_step": 1}},
        ("POST", "/artifacts"): {"type": "checkpoint", "name": "c", "step": 1, "path": str(folder)},
    }


def send(http: httpx.Client, project_id: str, run_id: str, call: tuple[str, str], body: dict) -> httpx.Response:
    method, suffix = call
    return http.request(method, run_url(project_id, run_id, suffix), json=body)


# Item 7: a run token does what its flow needs, nothing else


def test_a_run_token_reports_for_its_run_reads_its_project_and_can_do_nothing_else(site):
    owner = site.member("甲")
    project_id, elsewhere = site.project(owner), site.project(owner)
    run_id, sibling = site.run(owner, project_id), site.run(owner, project_id)
    runner = site.run_token(owner, project_id, run_id)
    folder = site.root / project_id / run_id / "step-1.ckpt"
    folder.mkdir(parents=True)

    me = runner.get("/whoami")
    assert me.status_code == 200, me.text
    assert me.json() == {"user": f"运行 {run_id}", "role": "runner", "run_id": run_id}
    for path in (
        "/trainers",
        f"/runs/{run_id}",
        f"/projects/{project_id}",
        f"/projects/{project_id}/runs",
        run_url(project_id, sibling, "/logs"),
        run_url(project_id, run_id, "/artifacts"),
    ):
        assert runner.get(path).status_code == 200, path
    assert runner.patch(run_url(project_id, run_id), json={"status": "运行中"}).status_code == 200
    assert runner.post(run_url(project_id, run_id, "/logs"), json={"batch_id": "b", "lines": [LINE]}).status_code == 200
    assert (
        runner.post(run_url(project_id, run_id, "/report"), json={"progress": {"current_step": 1}}).status_code == 200
    )
    checkpoint = runner.post(
        run_url(project_id, run_id, "/artifacts"), json={"type": "checkpoint", "name": "c", "path": str(folder)}
    )
    assert checkpoint.status_code == 201, checkpoint.text

    artifact = run_url(project_id, run_id, f"/artifacts/{checkpoint.json()['id']}")
    for method, path, body in [
        ("POST", run_url(project_id, run_id, "/resume"), {}),
        ("POST", f"/projects/{project_id}/runs", {"model": "m", "dataset": "语料"}),
        ("POST", run_url(project_id, sibling, "/cancel"), None),
        ("POST", run_url(project_id, run_id, "/cancel"), None),
        ("PATCH", run_url(project_id, sibling), {"status": "已完成"}),
        ("POST", run_url(project_id, sibling, "/logs"), {"batch_id": "b", "lines": [LINE]}),
        ("POST", run_url(project_id, sibling, "/report"), {"progress": {"current_step": 5}}),
        ("POST", artifact + "/tag", {"tag": "发布"}),
        ("DELETE", artifact, None),
        ("DELETE", run_url(project_id, run_id), None),
        ("DELETE", f"/projects/{project_id}", None),
        ("PUT", f"/projects/{project_id}/retention", {"keep_last": 1}),
        ("PUT", f"/projects/{project_id}/members", ["乙"]),
        ("PATCH", f"/projects/{project_id}", {"objective": "改掉"}),
        ("POST", run_url(project_id, run_id, "/token"), None),
        ("POST", "/projects", {"name": unique(), "owner": "甲"}),
        ("GET", "/projects", None),
        ("GET", f"/projects/{elsewhere}", None),
        ("GET", f"/runs/{sibling}", None),
        ("POST", "/tokens", {"user": "某人", "role": "admin"}),
        ("GET", "/tokens", None),
        ("POST", "/admin/backup", {"target": str(site.home / "backups" / "x")}),
        ("POST", "/admin/compact", None),
    ]:
        params = {"source_artifact_id": checkpoint.json()["id"]} if path.endswith("/resume") else None
        refused = runner.request(method, path, json=body, params=params)
        assert refused.status_code == 403, (method, path, refused.text)
        assert run_id in refused.json()["detail"], refused.text

    listed = owner.get(f"/projects/{project_id}/runs").json()
    assert sorted(run["id"] for run in listed) == sorted([run_id, sibling])
    assert owner.get(run_url(project_id, sibling)).json()["status"] == RunStatus.QUEUED.value
    assert [a["tags"] for a in owner.get(run_url(project_id, run_id, "/artifacts")).json()["items"]] == [[]]
    assert site.admin.get("/tokens").json()[-1]["user"] == "丙"


# Item 10: what a run reports comes from its own flow or an audited admin, and stops when the run ends


def test_members_cannot_rewrite_a_run_and_a_finished_run_accepts_nothing(site):
    owner, member, viewer = site.member("甲"), site.member("乙"), site.member("丙")
    project_id = site.project(owner, members=["乙"])
    run_id = site.run(owner, project_id)
    url = run_url(project_id, run_id)

    for http in (owner, member, viewer):
        for call, body in reports(site, project_id, run_id, "forged.ckpt").items():
            refused = send(http, project_id, run_id, call, body)
            assert refused.status_code == 403, (call, refused.text)
            assert run_id in refused.json()["detail"]
    untouched = owner.get(url).json()
    assert (untouched["status"], untouched["metrics"], untouched["artifacts"]) == (RunStatus.QUEUED.value, {}, [])
    assert owner.get(url + "/logs").json()["total"] == 0

    runner = site.run_token(owner, project_id, run_id)
    assert runner.patch(url, json={"status": "运行中", "progress": 0.1}).status_code == 200
    assert runner.post(url + "/metrics", json={"batch_id": "m1", "points": [POINT]}).status_code == 200
    assert site.admin.patch(url, json={"message": "管理员介入"}).status_code == 200
    assert site.admin.post(url + "/logs", json={"batch_id": "a1", "lines": [LINE]}).status_code == 200
    trail = [(e["actor"], e["action"]) for e in owner.get(f"/projects/{project_id}/audit").json()]
    assert ("管理员", "上报运行状态") in trail and ("管理员", "写入日志") in trail
    assert not [entry for entry in trail if entry[0] == f"运行 {run_id}"]

    assert runner.patch(url, json={"status": "已完成"}).status_code == 200
    assert runner.get("/whoami").status_code == 401
    finished = owner.get(url).json()
    lines = owner.get(url + "/logs").json()["total"]
    for call, body in reports(site, project_id, run_id, "late.ckpt").items():
        assert send(owner, project_id, run_id, call, body).status_code == 403, call
        late = send(site.admin, project_id, run_id, call, {**body, "status": "失败"} if call[0] == "PATCH" else body)
        assert late.status_code == 409, (call, late.text)
        assert run_id in late.json()["detail"] and "已完成" in late.json()["detail"]
    after = owner.get(url).json()
    assert (after["status"], after["metrics"], after["artifacts"]) == ("已完成", finished["metrics"], [])
    assert owner.get(url + "/logs").json()["total"] == lines


def test_a_finished_run_accepts_nothing_with_auth_off_too(shared_http):
    project = shared_http.post("/projects", json={"name": unique(), "owner": unique("负责人")}).json()
    run = shared_http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "语料"}).json()
    url = run_url(project["id"], run["id"])
    assert shared_http.post(url + "/cancel").json()["status"] == RunStatus.CANCELLED.value
    for suffix, body in [
        ("/logs", {"batch_id": "b", "lines": [LINE]}),
        ("/metrics", {"batch_id": "m", "points": [POINT]}),
        ("/report", {"metrics": {"batch_id": "r", "points": [POINT]}, "progress": {"current_step": 2}}),
        ("/artifacts", {"type": "config", "name": "c", "path": f"s3://artifacts/{project['id']}/{run['id']}/c.json"}),
    ]:
        late = shared_http.post(url + suffix, json=body)
        assert late.status_code == 409 and "已取消" in late.json()["detail"], late.text
    assert shared_http.get(url).json()["metrics"] == {}


LAUNCH_CODE_SECONDS = 30


@pytest.fixture(scope="module")
def secured_system(tmp_path_factory):
    home = tmp_path_factory.mktemp("secured-system") / "home"
    admin_token = cli_token(home, "管理员", "admin")
    system = LtmSystem(home, LTM_AUTH="true", LTM_LAUNCH_CODE_SECONDS=str(LAUNCH_CODE_SECONDS)).start()
    yield system, admin_token
    if system.process.poll() is None:
        system.stop()


DIRECT_CALL = """
from ltm import Client
from ltm.flows.training import training_run
client = Client.from_env()
project = client.create_project(name={name!r}, owner="甲")
run = client.create_run(project.id, model="m", dataset="语料",
                        hyperparameters={{"num_epochs": 2, "steps_per_epoch": 5, "step_seconds": 0}})
training_run(run.id)
print(project.id, run.id)
"""


def test_a_direct_flow_call_reports_with_a_run_token_exchanged_for_the_callers_own(tmp_path, secured_system):
    """README "Train a run yourself", with auth on: the caller's member token may not report, so the flow swaps it."""
    home, root = tmp_path / "home", tmp_path / "artifacts"
    admin_token = cli_token(home, "管理员", "admin")
    api = ApiProcess(home, LTM_AUTH="true", LTM_ARTIFACT_ROOT=str(root)).start()
    try:
        member_token = Client(api.url, token=admin_token).create_token("甲", "member").token
        env = {
            **os.environ,
            "LTM_API_URL": api.url,
            "LTM_TOKEN": member_token,
            "LTM_ARTIFACT_ROOT": str(root),
            "LTM_HOME": str(tmp_path / "caller"),
            "PREFECT_API_URL": secured_system[0].prefect_api_url,
        }
        script = DIRECT_CALL.format(name=unique())
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr[-3000:]
        project_id, run_id = done.stdout.split()[-2:]
        member = Client(api.url, token=member_token)
        run = member.get_run(project_id, run_id)
        assert run.status == RunStatus.COMPLETED and run.current_step == 10, run.message
        assert sum(a.type.value == "checkpoint" for a in run.artifacts) == 2
        trail = [(e.actor, e.action) for e in member.audit_trail(project_id)]
        assert ("甲", "领取运行令牌") in trail and not [e for e in trail if e[0] == "管理员"]
        forged = httpx.patch(
            f"{api.url}{run_url(project_id, run_id)}", json={"progress": 0.5}, headers=member.headers, timeout=30
        )
        assert forged.status_code == 403
    finally:
        api.stop()
    with duckdb.connect(str(home / "ltm.duckdb"), read_only=True) as con:
        scoped = con.execute("SELECT role, revoked_at IS NOT NULL FROM tokens WHERE run_id = ?", [run_id]).fetchall()
    assert ("runner", True) in scoped and all(revoked for _, revoked in scoped)


# Item 8: Prefect's API never shows a usable secret


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


def assert_nothing_authenticates(system: LtmSystem, run_id: str, values: list[str], refusals=(401,)) -> None:
    for value in values:
        as_token = httpx.get(f"{system.api_url}/whoami", headers={"Authorization": f"Bearer {value}"}, timeout=30)
        assert as_token.status_code == 401, (value, as_token.text)
        as_code = httpx.post(f"{system.api_url}/runs/{run_id}/token", json={"code": value}, timeout=30)
        assert as_code.status_code in refusals, (value, as_code.text)


def set_pool_paused(system: LtmSystem, paused: bool) -> None:
    with prefect_client(system.prefect_api_url) as prefect:  # a bare PATCH once met a busy server's 503 in CI
        prefect.update_work_pool("ltm-process", WorkPoolUpdate(is_paused=paused))
        assert prefect.read_work_pool("ltm-process").is_paused is paused


def test_prefect_shows_no_usable_secret_and_runs_still_train_with_a_revoked_run_token(secured_system):
    """Runs last in this module: it stops the system to read its store."""
    system, admin_token = secured_system
    admin = Client(system.api_url, token=admin_token)
    project = admin.create_project(name=unique("受保护的训练"), owner="管理员")
    hyperparameters = {"num_epochs": 2, "steps_per_epoch": 10, "step_seconds": 0.4}
    run = admin.create_run(project.id, model="m", dataset="d", hyperparameters=hyperparameters)
    wait_until(
        lambda: admin.get_run(project.id, run.id).status != RunStatus.QUEUED, timeout=90, message="the run to start"
    )
    flow_run = prefect_flow_run(system.prefect_api_url, run.flow_run_id).model_dump(mode="json")
    values = strings_in(flow_run["job_variables"]) + strings_in(flow_run["parameters"])
    assert run.id in values and len(values) > 1
    assert_nothing_authenticates(system, run.id, values)
    assert admin.get_run(project.id, run.id).status == RunStatus.RUNNING
    env = flow_run["job_variables"]["env"]
    assert "LTM_TOKEN" not in env and env["LTM_LAUNCH_CODE"].startswith("ltm_launch_")
    done = wait_until(
        lambda: (r := admin.get_run(project.id, run.id)).status.is_terminal and r, timeout=120, message="the run"
    )
    assert done.status == RunStatus.COMPLETED and done.current_step == 20, done.message

    set_pool_paused(system, True)
    try:
        waiting = admin.create_run(project.id, model="m", dataset="d", hyperparameters=hyperparameters)
        job = prefect_flow_run(system.prefect_api_url, waiting.flow_run_id).model_dump(mode="json")
        assert job["state"]["type"] == "SCHEDULED"
        code = job["job_variables"]["env"]["LTM_LAUNCH_CODE"]
        assert_nothing_authenticates(system, waiting.id, [code], refusals=(409,))
        wait_until(
            lambda: httpx.post(f"{system.api_url}/runs/{waiting.id}/token", json={"code": code}).status_code == 401,
            timeout=LAUNCH_CODE_SECONDS * 2,
            interval=1,
            message="the launch code to expire",
        )
    finally:
        set_pool_paused(system, False)
    ended = wait_until(
        lambda: (r := admin.get_run(project.id, waiting.id)).status.is_terminal and r, timeout=120, message="the run"
    )
    assert ended.status == RunStatus.FAILED and "启动码" in (ended.message or ""), ended.message

    system.stop()
    with duckdb.connect(str(system.home / "ltm.duckdb"), read_only=True) as con:
        scoped = con.execute(
            "SELECT run_id, role, revoked_at IS NOT NULL FROM tokens WHERE run_id IS NOT NULL ORDER BY run_id, role"
        ).fetchall()
    assert sorted(scoped) == sorted([(run.id, "launch", True), (run.id, "runner", True), (waiting.id, "launch", True)])
