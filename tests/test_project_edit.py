"""PATCH /projects/{id} renames a project and hands it to another owner: versioned like every other field, a taken
name is a 409, an empty one a 422, and with authentication on only the owner or an admin may change the owner."""

import pytest

from ltm import ApiError, Client
from tests.conftest import ApiProcess
from tests.helpers import cli_token, new_project, unique


def test_name_and_owner_change_as_a_new_version(shared_http):
    project = new_project(shared_http, owner="小李")
    name = unique("改名后")
    response = shared_http.patch(f"/projects/{project['id']}", json={"name": f"  {name}  ", "owner": "小张"})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["name"], changed["owner"], changed["version"]) == (name, "小张", 2)
    assert changed["versions"][-1]["changes"] == {
        "name": {"old": project["name"], "new": name},
        "owner": {"old": "小李", "new": "小张"},
    }
    assert changed["versions"][-1]["snapshot"]["name"] == name
    assert [p["id"] for p in shared_http.get("/projects", params={"owner": "小张", "q": name}).json()] == [
        project["id"]
    ]

    same = shared_http.patch(f"/projects/{project['id']}", json={"name": name, "owner": "小张"})
    assert same.json()["version"] == 2, "an unchanged name and owner make no version"


def test_a_taken_name_is_a_409_and_a_blank_one_a_422(shared_http):
    first, second = new_project(shared_http), new_project(shared_http)
    taken = shared_http.patch(f"/projects/{second['id']}", json={"name": first["name"]})
    assert taken.status_code == 409 and first["name"] in taken.json()["detail"]
    for body in ({"name": "   "}, {"name": None}, {"owner": ""}, {"owner": None}, {"name": "长" * 201}):
        refused = shared_http.patch(f"/projects/{second['id']}", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert [error["field"] for error in refused.json()["errors"]] == list(body), refused.text
    unchanged = shared_http.get(f"/projects/{second['id']}").json()
    assert (unchanged["name"], unchanged["owner"], unchanged["version"]) == (second["name"], second["owner"], 1)


def test_renaming_to_a_name_freed_by_another_rename_works(shared_http):
    first, second = new_project(shared_http), new_project(shared_http)
    old_name = first["name"]
    assert shared_http.patch(f"/projects/{first['id']}", json={"name": unique()}).status_code == 200
    moved = shared_http.patch(f"/projects/{second['id']}", json={"name": old_name})
    assert moved.status_code == 200 and moved.json()["name"] == old_name


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    home = tmp_path_factory.mktemp("edit-auth") / "home"
    admin_token = cli_token(home, "管理员", "admin")
    api = ApiProcess(home, LTM_AUTH="true").start()
    admin = Client(api.url, token=admin_token)
    users = {name: Client(api.url, token=admin.create_token(name, "member").token) for name in ("小李", "小张")}
    yield admin, users
    api.stop()


def refused(call, status: int) -> str:
    with pytest.raises(ApiError) as error:
        call()
    assert error.value.status_code == status, error.value.detail
    return error.value.detail


def test_only_the_owner_or_an_admin_changes_the_owner(secured):
    admin, users = secured
    li, zhang = users["小李"], users["小张"]
    project = li.create_project(name=unique("交接项目"))
    li.set_members(project.id, ["小张"])

    assert "负责人" in refused(lambda: zhang.update_project(project.id, owner="小张"), 403)
    renamed = zhang.update_project(project.id, name=unique("成员改名"))
    assert (renamed.owner, renamed.version) == ("小李", 2), "a member may rename, not take over"

    handed = li.update_project(project.id, owner="小张")
    assert (handed.owner, handed.version) == ("小张", 3)
    assert "负责人" in refused(lambda: li.update_project(project.id, owner="小李"), 403)
    assert admin.update_project(project.id, owner="小李").owner == "小李"
    trail = [(e.actor, e.action) for e in admin.audit_trail(project.id)]
    assert ("小李", "修改项目") in trail and ("管理员", "修改项目") in trail


def test_project_detail_can_leave_out_its_runs(shared_client):
    project = shared_client.create_project(unique("不带运行"), "小李")
    shared_client.create_run(project.id, "m", "d")
    assert len(shared_client.get_project(project.id).runs) == 1
    light = shared_client.get_project(project.id, runs=False)
    assert (light.runs, light.run_count, light.version) == ([], 1, 1)
