"""Access control over real HTTP: tokens stored hashed, roles, project membership, audit trail."""

import os
import subprocess
import sys

import duckdb
import httpx
import pytest

from ltm import ApiError, Client
from ltm.models import RunStatus
from tests.conftest import ROOT, ApiProcess, LtmSystem, answers, free_port, wait_until
from tests.helpers import cli_token


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    home = tmp_path_factory.mktemp("auth") / "home"
    admin_token = cli_token(home, "管理员", "admin")
    api = ApiProcess(home, LTM_AUTH="true").start()
    admin = Client(api.url, token=admin_token)
    tokens = {
        name: admin.create_token(name, role).token
        for name, role in [("小李", "member"), ("小张", "member"), ("小王", "viewer")]
    }
    yield api, admin, {name: Client(api.url, token=token) for name, token in tokens.items()}, admin_token
    api.stop()


def refused(call, status: int) -> str:
    with pytest.raises(ApiError) as error:
        call()
    assert error.value.status_code == status, error.value.detail
    return error.value.detail


def test_no_token_or_a_wrong_one_is_a_401(secured):
    api, *_ = secured
    assert httpx.get(api.url + "/projects").status_code == 401
    assert httpx.get(api.url + "/projects", headers={"Authorization": "Bearer ltm_wrong"}).status_code == 401
    assert httpx.get(api.url + "/health").status_code == 200


def test_roles_members_and_owners(secured):
    _, admin, users, _ = secured
    li, zhang, wang = users["小李"], users["小张"], users["小王"]
    assert "需要 member 角色" in refused(lambda: wang.create_project(name="观察者项目", owner="小王"), 403)
    project = li.create_project(name="权限项目", owner="小李")
    assert [p.id for p in wang.list_projects()] == [project.id]

    refused(lambda: zhang.create_run(project.id, model="m", dataset="d"), 403)
    assert li.set_members(project.id, ["小张"]).members == ["小张"]
    assert wang.list_members(project.id).members == ["小张"]
    run = zhang.create_run(project.id, model="m", dataset="d")
    refused(lambda: wang.cancel_run(project.id, run.id), 403)

    checkpoint = admin.register_artifact(
        project.id, run.id, type="checkpoint", name="c", step=1, path=f"s3://artifacts/{project.id}/{run.id}/c.ckpt"
    )
    zhang.tag_artifact(project.id, run.id, checkpoint.id, "候选")
    assert "负责人" in refused(lambda: zhang.tag_artifact(project.id, run.id, checkpoint.id, "发布"), 403)
    tagged = li.tag_artifact(project.id, run.id, checkpoint.id, "发布", notes="通过评审")
    assert [(t.value.value, t.applied_by) for t in tagged.tags] == [("候选", "小张"), ("发布", "小李")]

    refused(lambda: zhang.update_project(project.id, status="已归档"), 403)
    assert zhang.cancel_run(project.id, run.id).status == RunStatus.CANCELLED
    li.update_project(project.id, objective="更短的摘要")

    trail = [(e.actor, e.action) for e in wang.audit_trail(project.id)]
    for expected in [
        ("小李", "创建项目"),
        ("小李", "设置成员"),
        ("小张", "创建运行"),
        ("小张", "打标签"),
        ("小李", "发布"),
        ("小张", "取消运行"),
        ("小李", "修改项目"),
    ]:
        assert expected in trail


def test_only_admins_manage_tokens_and_revoked_tokens_stop_working(secured):
    api, admin, users, _ = secured
    refused(lambda: users["小李"].create_token("某人", "admin"), 403)
    temporary = admin.create_token("临时", "viewer")
    client = Client(api.url, token=temporary.token)
    assert client.whoami().user == "临时"
    revoked = admin.revoke_token(temporary.id)
    assert revoked.id == temporary.id and revoked.user == "临时" and revoked.revoked_at is not None
    refused(client.whoami, 401)


def test_tokens_are_stored_only_as_hashes(secured):
    """Runs last in this module: it stops the shared API to read its store."""
    api, _, _, admin_token = secured
    api.stop()
    with duckdb.connect(str(api.home / "ltm.duckdb"), read_only=True) as con:
        stored = " ".join(str(row) for row in con.execute("SELECT * FROM tokens").fetchall())
    assert "管理员" in stored
    assert admin_token not in stored and admin_token.removeprefix("ltm_") not in stored


def test_listening_beyond_loopback_turns_auth_on(tmp_path):
    port = free_port()
    env = {**os.environ, "LTM_HOME": str(tmp_path / "home")}
    env.pop("LTM_AUTH", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "ltm.cli", "api", "--host", "0.0.0.0", "--port", str(port)], cwd=ROOT, env=env
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(url + "/health"), timeout=60, message="the API")
        assert httpx.get(url + "/projects").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_flows_train_with_a_token_scoped_to_their_run(tmp_path):
    home = tmp_path / "home"
    admin_token = cli_token(home, "管理员", "admin")
    system = LtmSystem(home, LTM_AUTH="true").start()
    try:
        admin = Client(system.api_url, token=admin_token)
        project = admin.create_project(name="受保护的训练", owner="管理员")
        run = admin.create_run(
            project.id,
            model="m",
            dataset="d",
            hyperparameters={"num_epochs": 1, "steps_per_epoch": 5, "step_seconds": 0},
        )
        done = wait_until(
            lambda: (r := admin.get_run(project.id, run.id)).status.is_terminal and r,
            timeout=90,
            message="the run to finish",
        )
        assert done.status == RunStatus.COMPLETED, done.message
        assert [t.user for t in admin.list_tokens()] == ["管理员"]
    finally:
        system.stop()
    con = duckdb.connect(str(home / "ltm.duckdb"), read_only=True)
    scoped = con.execute(
        "SELECT run_id, role, revoked_at IS NOT NULL FROM tokens WHERE run_id IS NOT NULL ORDER BY role"
    ).fetchall()
    con.close()
    assert scoped == [(run.id, "launch", True), (run.id, "runner", True)]
