"""Attacks from web pages and from other users that once worked on main, replayed against real API processes
(issue 12, items 9, 14, 17 and 18).

A web page cannot attach a token, so item 9's attacks play against the loopback default without one, set up as
`ltm up` runs it; the others play against an API with auth on and real tokens of each role. Each test asserts the
refusal and that nothing the attacker aimed at was read or changed.
"""

import threading

import httpx
import pytest

from ltm.api.auth import issue_token
from ltm.store import Database
from ltm.vocabulary import Role, field_label
from tests.conftest import ApiProcess
from tests.helpers import cli_token, new_project, new_run, unique

CONSOLE = "http://127.0.0.1:8765"
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def local_api(tmp_path_factory):
    """The no-token loopback default, told where its console is as `ltm up` tells it."""
    api = ApiProcess(tmp_path_factory.mktemp("web") / "home", LTM_CONSOLE_URL=CONSOLE).start()
    yield api
    api.stop()


@pytest.fixture
def local_http(local_api):
    with httpx.Client(base_url=local_api.url, timeout=30) as http:
        yield http


class Site:
    """An API with auth on, its admin, members 甲 and 乙 and viewer 丙."""

    def __init__(self, home) -> None:
        admin_token = cli_token(home, "管理员", "admin")
        self.api = ApiProcess(home, LTM_AUTH="true", LTM_ALLOWED_HOSTS="ltm.internal").start()
        self.admin = self.user(admin_token)
        self.tokens = {
            name: self.admin.post("/tokens", json={"user": name, "role": role}).json()["token"]
            for name, role in [("甲", "member"), ("乙", "member"), ("丙", "viewer")]
        }

    def user(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def member(self, name: str) -> httpx.Client:
        return self.user(self.tokens[name])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("web-auth") / "home")
    yield site
    if site.api.process.poll() is None:
        site.api.stop()


def checkpoint(http: httpx.Client, run: dict) -> dict:
    response = http.post(
        f"/projects/{run['project_id']}/runs/{run['id']}/artifacts",
        json={
            "type": "checkpoint",
            "name": "c",
            "step": 10,
            "path": f"s3://artifacts/{run['project_id']}/{run['id']}/c",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


# Item 9: cross-site requests and DNS rebinding against the no-token loopback default


def test_a_cross_site_page_cannot_change_anything_while_the_api_its_console_and_programs_can(local_api, local_http):
    """A form on another site cancelled (200), resumed (201) and compacted (200) with no token and no Origin check."""
    project = new_project(local_http, description="原描述")
    run = new_run(local_http, project["id"])
    source = checkpoint(local_http, run)
    run_url = f"/projects/{project['id']}/runs/{run['id']}"
    store = local_api.home / "ltm.duckdb"
    inode = store.stat().st_ino
    text_form = {"Content-Type": "text/plain"}  # <form enctype="text/plain">: a JSON-looking body, no preflight

    for sender in ({"Origin": EVIL}, {"Origin": "null"}, {"Referer": EVIL + "/lure.html"}):
        for method, path, request in [
            ("POST", run_url + "/cancel", {"data": {"confirm": "1"}}),
            ("POST", run_url + f"/resume?source_artifact_id={source['id']}", {}),
            ("POST", "/admin/compact", {}),
            ("PATCH", f"/projects/{project['id']}", {"content": '{"description": "被改"}', "headers": text_form}),
            ("PATCH", f"/projects/{project['id']}", {"json": {"description": "被改"}}),
            (
                "POST",
                f"{run_url}/artifacts/{source['id']}/tag",
                {"content": '{"tag": "发布", "notes": "="}', "headers": text_form},
            ),
            ("DELETE", run_url, {"params": {"dry_run": "false"}}),
        ]:
            headers = {**request.pop("headers", {}), **sender}
            response = local_http.request(method, path, headers=headers, **request)
            assert response.status_code == 403, (sender, method, path, response.text)
            assert f"请求头 {next(iter(sender))}" in response.json()["detail"] and "跨站" in response.json()["detail"]

    assert local_http.get(run_url).json()["status"] == "排队中"
    assert [r["id"] for r in local_http.get(f"/projects/{project['id']}/runs").json()] == [run["id"]]
    unchanged = local_http.get(f"/projects/{project['id']}").json()
    assert (unchanged["version"], unchanged["description"]) == (1, "原描述")
    assert local_http.get(f"{run_url}/artifacts").json()["items"][0]["tags"] == []
    assert store.stat().st_ino == inode, "the store was not compacted (compaction swaps in a new file)"

    for number, sender in enumerate(
        [{"Origin": local_api.url}, {"Origin": CONSOLE}, {"Referer": local_api.url + "/docs"}, {}], start=2
    ):
        response = local_http.patch(
            f"/projects/{project['id']}", json={"description": f"第 {number} 版"}, headers=sender
        )
        assert response.status_code == 200, (sender, response.text)
        assert response.json()["version"] == number
    same_site = local_http.post(
        run_url + "/cancel",
        headers={"Host": f"localhost:{local_api.port}", "Origin": f"http://localhost:{local_api.port}"},
    )
    assert same_site.status_code == 200, same_site.text
    assert same_site.json()["status"] == "已取消"


def test_a_rebound_host_name_reads_nothing(local_api, local_http):
    """DNS rebinding: evil.example resolved to 127.0.0.1, so its page read the API as its own site."""
    project = new_project(local_http, description="机密描述")
    for host in ["evil.example", f"evil.example:{local_api.port}", "127.0.0.1.evil.example", "localhost.evil.example"]:
        for path in ("/projects", f"/projects/{project['id']}", "/openapi.json"):
            response = httpx.get(local_api.url + path, headers={"Host": host}, timeout=30)
            assert response.status_code == 421, (host, path, response.text)
            assert "Host" in response.json()["detail"] and "LTM_ALLOWED_HOSTS" in response.json()["detail"]
            assert "机密描述" not in response.text
    for host in [f"127.0.0.1:{local_api.port}", f"localhost:{local_api.port}", "localhost", f"[::1]:{local_api.port}"]:
        response = httpx.get(f"{local_api.url}/projects/{project['id']}", headers={"Host": host}, timeout=30)
        assert response.status_code == 200, (host, response.text)


def test_a_configured_host_name_is_served_and_others_are_not(site):
    http = site.member("甲")
    assert http.get("/whoami", headers={"Host": "ltm.internal:443"}).json()["user"] == "甲"
    refused = http.get("/whoami", headers={"Host": "evil.example"})
    assert refused.status_code == 421 and "evil.example" in refused.json()["detail"]


# Item 14: concurrent edits


def test_each_concurrent_edit_answers_the_version_it_created(local_api, local_http):
    """18 of 153 concurrent PATCH answers showed another request's version."""
    project = new_project(local_http)
    edits = 120
    answers: dict[int, httpx.Response] = {}
    start = threading.Barrier(12)

    def edit(worker: int) -> None:
        with httpx.Client(base_url=local_api.url, timeout=60) as own:
            start.wait()
            for number in range(worker, edits, 12):
                answers[number] = own.patch(f"/projects/{project['id']}", json={"description": f"编辑 {number}"})

    threads = [threading.Thread(target=edit, args=(worker,)) for worker in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    versions = local_http.get(f"/projects/{project['id']}/versions").json()
    assert [v["version"] for v in versions] == list(range(1, edits + 2))
    written = {v["version"]: v["snapshot"]["description"] for v in versions}
    for number, response in answers.items():
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["description"] == f"编辑 {number}", (number, body["version"])
        assert written[body["version"]] == f"编辑 {number}"
        assert body["versions"][-1]["version"] == body["version"]
    assert sorted(r.json()["version"] for r in answers.values()) == list(range(2, edits + 2))


# Item 17: look-alike names, invisible characters, owners


def test_look_alike_names_collide_and_invisible_characters_are_refused(site):
    http = site.member("甲")
    suffix = unique("")
    wide = f"Ｍｏｄｅｌ－ｃａｆｅ\u0301{suffix}"  # full-width letters, a decomposed accent
    created = http.post("/projects", json={"name": f" {wide} ", "tags": ["ｔａｇ"], "task_type": "ﬁne-tune"})
    assert created.status_code == 201, created.text
    plain = f"Model-café{suffix}"
    assert (created.json()["name"], created.json()["tags"], created.json()["task_type"]) == (
        plain,
        ["tag"],
        "fine-tune",
    )
    for look_alike in (plain, f"Model-cafe\u0301{suffix}", f"Ｍodel-café{suffix}"):
        again = http.post("/projects", json={"name": look_alike})
        assert again.status_code == 409, (look_alike, again.text)
        assert plain in again.json()["detail"]

    for field, value, where in [
        ("name", f"a\x00b{suffix}", "name"),
        ("name", f"a\u200bb{suffix}", "name"),
        ("name", f"\u202egnp.{suffix}", "name"),
        ("name", f"a\tb{suffix}", "name"),
        ("owner", "甲\u200d", "owner"),
        ("tags", ["a\u2066b"], "tags.0"),
        ("task_type", "摘要\x07", "task_type"),
    ]:
        body = {"name": f"控制字符{suffix}", field: value}
        response = http.post("/projects", json=body)
        assert response.status_code == 422, (field, response.text)
        assert response.json()["errors"][0]["field"] == where
        assert f"{field_label(where)}：不能包含控制字符或不可见的格式字符" in response.json()["detail"]
    assert http.get("/projects", params={"q": f"控制字符{suffix}"}).json() == []

    run = http.post(
        f"/projects/{created.json()['id']}/runs", json={"name": "运行\x00", "model": "m", "dataset": "语料"}
    )
    assert run.status_code == 422 and run.json()["errors"][0]["field"] == "name"
    listed = http.get("/projects", params={"q": f"ＭＯＤＥＬ－ＣＡＦÉ{suffix}"}).json()
    assert [p["name"] for p in listed] == [plain]


def test_members_own_what_they_create_and_only_admins_name_another_owner(site):
    member = site.member("甲")
    defaulted = member.post("/projects", json={"name": unique()})
    assert defaulted.status_code == 201 and defaulted.json()["owner"] == "甲"
    assert member.post("/projects", json={"name": unique(), "owner": "甲"}).json()["owner"] == "甲"

    name = unique("代建")
    refused = member.post("/projects", json={"name": name, "owner": "乙"})
    assert refused.status_code == 403, refused.text
    assert "owner" in refused.json()["detail"] and "管理员" in refused.json()["detail"]
    assert site.admin.get("/projects", params={"q": name}).json() == []

    assert site.admin.post("/projects", json={"name": name, "owner": "乙"}).json()["owner"] == "乙"
    assert site.admin.post("/projects", json={"name": unique()}).json()["owner"] == "管理员"


def test_without_a_token_the_seed_body_still_names_its_owner(local_http):
    seed = {"name": unique("中文摘要系统"), "owner": "小李", "task_type": "文本摘要", "tags": ["科研", "第一阶段"]}
    created = local_http.post("/projects", json=seed)
    assert created.status_code == 201 and created.json()["owner"] == "小李"
    missing = local_http.post("/projects", json={"name": unique()})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "owner"


# Item 18: private projects


def project_scoped(project_id: str, run_id: str, artifact_id: str) -> list[tuple[str, str, dict]]:
    project, run = f"/projects/{project_id}", f"/projects/{project_id}/runs/{run_id}"
    return [
        ("GET", project, {}),
        ("GET", project + "/versions", {}),
        ("GET", project + "/runs", {}),
        ("GET", project + "/audit", {}),
        ("GET", project + "/members", {}),
        ("GET", project + "/retention", {}),
        ("GET", project + "/retention/preview", {}),
        ("GET", run, {}),
        ("GET", run + "/logs", {}),
        ("GET", run + "/metrics", {}),
        ("GET", run + "/artifacts", {}),
        ("PATCH", project, {"json": {"description": "偷改"}}),
        ("POST", project + "/runs", {"json": {"model": "m", "dataset": "语料"}}),
        ("POST", run + "/cancel", {}),
        ("POST", run + f"/resume?source_artifact_id={artifact_id}", {}),
        ("POST", run + f"/artifacts/{artifact_id}/tag", {"json": {"tag": "候选"}}),
        ("DELETE", project, {}),
    ]


def test_a_private_project_is_not_found_by_anyone_but_its_owner_members_and_admins(site):
    """Every token read every project."""
    owner, outsider, viewer = site.member("甲"), site.member("乙"), site.user(site.tokens["丙"])
    private = owner.post("/projects", json={"name": unique("私有"), "visibility": "私有", "description": "机密"}).json()
    team = owner.post("/projects", json={"name": unique("公开")}).json()
    assert (private["visibility"], team["visibility"]) == ("私有", "团队可见")
    run = new_run(owner, private["id"])
    artifact = checkpoint(site.admin, run)

    for caller in (outsider, viewer):
        listed = [p["id"] for p in caller.get("/projects").json()]
        assert team["id"] in listed and private["id"] not in listed
        assert private["id"] not in [p["id"] for p in caller.get("/projects", params={"owner": "甲"}).json()]
        assert caller.get("/projects", params={"q": private["name"]}).json() == []
        for method, path, request in project_scoped(private["id"], run["id"], artifact["id"]):
            response = caller.request(method, path, **request)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["detail"] in (f"项目 {private['id']} 不存在", f"运行 {run['id']} 不存在")
            assert "机密" not in response.text
        by_id = caller.get(f"/runs/{run['id']}")
        assert by_id.status_code == 404 and by_id.json()["detail"] == f"运行 {run['id']} 不存在"
    after = site.admin.get(f"/projects/{private['id']}").json()
    assert (after["version"], after["description"], after["run_count"]) == (1, "机密", 1)
    assert site.admin.get(f"/projects/{private['id']}/runs/{run['id']}").json()["status"] == "排队中"

    for reader in (owner, site.admin):
        assert private["id"] in [p["id"] for p in reader.get("/projects").json()]
        for method, path, _ in project_scoped(private["id"], run["id"], artifact["id"]):
            if method == "GET":
                assert reader.get(path).status_code == 200, (path, reader.get(path).text)
        assert reader.get(f"/runs/{run['id']}").status_code == 200

    assert owner.put(f"/projects/{private['id']}/members", json={"members": ["乙"]}).status_code == 200
    assert outsider.get(f"/projects/{private['id']}").json()["description"] == "机密"
    assert private["id"] in [p["id"] for p in outsider.get("/projects").json()]
    assert viewer.get(f"/projects/{private['id']}").status_code == 404


def test_only_the_owner_or_an_admin_changes_visibility_and_each_change_is_a_version(site):
    owner, member, outsider = site.member("甲"), site.member("乙"), site.user(site.tokens["丙"])
    project = owner.post("/projects", json={"name": unique("可见范围")}).json()
    owner.put(f"/projects/{project['id']}/members", json={"members": ["乙"]})

    refused = member.patch(f"/projects/{project['id']}", json={"visibility": "私有"})
    assert refused.status_code == 403 and "负责人" in refused.json()["detail"]
    assert outsider.get(f"/projects/{project['id']}").status_code == 200

    hidden = owner.patch(f"/projects/{project['id']}", json={"visibility": "私有"})
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["version"] == 2
    assert hidden.json()["versions"][-1]["changes"] == {"visibility": {"old": "团队可见", "new": "私有"}}
    assert outsider.get(f"/projects/{project['id']}").status_code == 404
    assert member.patch(f"/projects/{project['id']}", json={"description": "成员照常修改"}).status_code == 200

    shown = site.admin.patch(f"/projects/{project['id']}", json={"visibility": "团队可见"})
    assert shown.json()["version"] == 4 and outsider.get(f"/projects/{project['id']}").status_code == 200
    invalid = owner.patch(f"/projects/{project['id']}", json={"visibility": "公开"})
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "visibility"


def test_a_run_token_sees_its_own_private_project_only(tmp_path):
    """A fresh API: the run token is written into its store while it is stopped, as the launcher would issue it."""
    home = tmp_path / "home"
    admin_token = cli_token(home, "管理员", "admin")
    api = ApiProcess(home, LTM_AUTH="true").start()
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30) as admin:
        own = admin.post("/projects", json={"name": unique("自己的"), "visibility": "私有"}).json()
        other = admin.post("/projects", json={"name": unique("别人的"), "visibility": "私有"}).json()
        run = new_run(admin, own["id"])
        other_run = new_run(admin, other["id"])
    api.stop()
    db = Database(home / "ltm.duckdb")
    try:
        token, _ = issue_token(db, f"运行 {run['id']}", Role.RUNNER.value, "ltm", run_id=run["id"])
    finally:
        db.close()
    api.start()
    try:
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as flow:
            assert flow.get(f"/projects/{own['id']}").status_code == 200
            assert flow.get(f"/runs/{run['id']}").status_code == 200
            assert flow.get(f"/projects/{other['id']}").status_code in (403, 404)
            assert flow.get(f"/runs/{other_run['id']}").status_code in (403, 404)
    finally:
        api.stop()
