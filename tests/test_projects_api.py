"""Projects: validation, uniqueness, filters, derived status, versions and what runs inherit."""

import threading
from datetime import datetime

import httpx
import pytest

from ltm.vocabulary import field_label
from tests.helpers import new_project, new_run, unique


def move_run(http, run: dict, status: str) -> dict:
    response = http.patch(f"/projects/{run['project_id']}/runs/{run['id']}", json={"status": status})
    assert response.status_code == 200, response.text
    return response.json()


def status_of(http, project_id: str) -> str:
    return http.get(f"/projects/{project_id}").json()["status"]


def listed(http, **params) -> list[str]:
    response = http.get("/projects", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


# Validation

OWNER = unique("小李")  # nobody else on the shared server owns a project by this name
VALID = {"name": "校验项目", "owner": OWNER}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"owner": OWNER}, "name", "缺少必填字段"),
        ({"name": "校验项目"}, "owner", "缺少必填字段"),
        ({**VALID, "name": ""}, "name", "不能为空"),
        ({**VALID, "name": "   "}, "name", "不能为空"),
        ({**VALID, "owner": ""}, "owner", "不能为空"),
        ({**VALID, "name": 123}, "name", "必须是字符串"),
        ({**VALID, "owner": None}, "owner", "必须是字符串"),
        ({**VALID, "tags": "科研"}, "tags", "必须是数组"),
        ({**VALID, "tags": [1]}, "tags.0", "必须是字符串"),
        ({**VALID, "tags": [""]}, "tags.0", "不能为空"),
        ({**VALID, "description": ["a"]}, "description", "必须是字符串"),
        ({**VALID, "colour": "红"}, "colour", "不支持的字段"),
        ({**VALID, "status": "进行中"}, "status", "不支持的字段"),
        ({**VALID, "name": "名" * 201}, "name", "长度不能超过 200"),
        ({**VALID, "owner": "x" * 201}, "owner", "长度不能超过 200"),
        ({**VALID, "description": "x" * 5001}, "description", "长度不能超过 5000"),
        ({**VALID, "task_type": "x" * 201}, "task_type", "长度不能超过 200"),
        ({**VALID, "tags": ["x" * 65]}, "tags.0", "长度不能超过 64"),
        ({**VALID, "tags": [f"t{i}" for i in range(51)]}, "tags", "元素数量不能超过 50"),
        ({**VALID, "default_hyperparameters": [1, 2]}, "default_hyperparameters", "必须是 JSON 对象"),
        ({**VALID, "default_hyperparameters": "lr=3e-5"}, "default_hyperparameters", "必须是 JSON 对象"),
        ({**VALID, "default_hyperparameters": {"blob": "x" * 70_000}}, "default_hyperparameters", "JSON 对象过大"),
    ],
)
def test_create_rejects_invalid_body(shared_http, body, field, message):
    response = shared_http.post("/projects", json=body)

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"{field_label(field)}：{message}" in detail
    assert any(e["field"] == field for e in response.json()["errors"])
    assert listed(shared_http, owner=OWNER) == []


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"name"', b'{"name": "a", "owner": "b", "default_hyperparameters": {"lr": NaN}}']
)
def test_create_rejects_malformed_json(shared_http, raw):
    response = shared_http.post("/projects", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("请求参数有误")


def test_name_is_trimmed(shared_http):
    name = unique()
    project = new_project(shared_http, name=f"  {name}  ")
    assert project["name"] == name


def test_duplicate_name_conflicts(shared_http):
    project = new_project(shared_http)

    other = unique("另一个人")
    again = shared_http.post("/projects", json={"name": project["name"], "owner": other})
    padded = shared_http.post("/projects", json={"name": f" {project['name']} ", "owner": other})

    for response in (again, padded):
        assert response.status_code == 409, response.text
        assert response.json()["detail"] == f"项目名称“{project['name']}”已存在，请换一个名称"
    assert listed(shared_http, owner=other) == []


def test_concurrent_duplicate_names_create_one_project(shared_http, shared_api):
    name = unique()
    owner = unique("并发")
    codes: list[int] = []

    def create():
        with httpx.Client(base_url=shared_api.url, timeout=30) as own:
            codes.append(own.post("/projects", json={"name": name, "owner": owner}).status_code)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [201] + [409] * 7
    assert len(listed(shared_http, owner=owner)) == 1


# Listing and filters


def test_filters_owner_status_tag_and_query(shared_http):
    owner = unique("筛选")
    tag = unique("标签")
    busy = new_project(shared_http, owner=owner, name=unique("Summary 摘要"), tags=[tag, "共用"])
    draft = new_project(shared_http, owner=owner, tags=["共用"])
    other = new_project(shared_http, tags=[tag])
    new_run(shared_http, busy["id"])

    assert set(listed(shared_http, owner=owner)) == {busy["id"], draft["id"]}
    assert listed(shared_http, owner=owner, status="进行中") == [busy["id"]]
    assert listed(shared_http, owner=owner, status="草稿") == [draft["id"]]
    assert listed(shared_http, owner=owner, status="空闲") == []
    assert set(listed(shared_http, tag=tag)) == {busy["id"], other["id"]}
    assert listed(shared_http, owner=owner, tag=tag) == [busy["id"]]
    assert listed(shared_http, q=busy["name"].split("-")[-1].upper()) == [busy["id"]]
    assert listed(shared_http, owner=owner, q="summary 摘要") == [busy["id"]]
    assert listed(shared_http, owner=unique("无人")) == []

    items = {item["id"]: item for item in shared_http.get("/projects", params={"owner": owner}).json()}
    assert items[busy["id"]]["run_count"] == 1
    assert items[busy["id"]]["status"] == "进行中"
    assert items[busy["id"]]["tags"] == [tag, "共用"]
    assert items[draft["id"]]["run_count"] == 0


def test_list_is_newest_first(shared_http):
    owner = unique("排序")
    first = new_project(shared_http, owner=owner)
    second = new_project(shared_http, owner=owner)
    assert listed(shared_http, owner=owner) == [second["id"], first["id"]]


@pytest.mark.parametrize("status", ["进行", "draft", ""])
def test_invalid_status_filter(shared_http, status):
    response = shared_http.get("/projects", params={"status": status})

    assert response.status_code == 422, response.text
    assert "状态" in response.json()["detail"]
    assert "草稿" in response.json()["detail"]


# Derived status


def test_status_follows_runs_and_archiving(shared_http):
    project = new_project(shared_http)
    pid = project["id"]
    assert project["status"] == "草稿"

    run = new_run(shared_http, pid)
    assert status_of(shared_http, pid) == "进行中"
    move_run(shared_http, run, "运行中")
    assert status_of(shared_http, pid) == "进行中"
    move_run(shared_http, run, "已完成")
    assert status_of(shared_http, pid) == "空闲"
    assert pid in listed(shared_http, status="空闲")

    archived = shared_http.patch(f"/projects/{pid}", json={"status": "已归档"})
    assert archived.status_code == 200
    assert archived.json()["status"] == "已归档"
    assert pid in listed(shared_http, status="已归档")
    assert pid not in listed(shared_http, status="空闲")

    restored = shared_http.patch(f"/projects/{pid}", json={"status": "未归档"})
    assert restored.status_code == 200
    assert restored.json()["status"] == "空闲"


def test_cancelling_and_failed_runs(shared_http):
    project = new_project(shared_http)
    run = new_run(shared_http, project["id"])
    move_run(shared_http, run, "取消中")
    assert status_of(shared_http, project["id"]) == "进行中"
    move_run(shared_http, run, "失败")
    assert status_of(shared_http, project["id"]) == "空闲"


def test_archive_with_active_run_still_archived(shared_http):
    project = new_project(shared_http)
    new_run(shared_http, project["id"])
    assert shared_http.patch(f"/projects/{project['id']}", json={"status": "已归档"}).json()["status"] == "已归档"


# Versions


def test_patch_records_numbered_versions(shared_http):
    project = new_project(shared_http, description="旧描述", tags=["a"], default_hyperparameters={"lr": 0.1})
    pid = project["id"]
    assert project["version"] == 1
    assert [v["version"] for v in project["versions"]] == [1]
    assert project["versions"][0]["changes"]["name"] == {"old": None, "new": project["name"]}

    first = shared_http.patch(f"/projects/{pid}", json={"description": "新描述", "tags": ["a", "b"], "objective": None})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["version"] == 2
    assert body["description"] == "新描述"
    assert body["tags"] == ["a", "b"]
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(project["updated_at"])
    v2 = body["versions"][-1]
    assert v2["version"] == 2
    assert v2["changes"] == {
        "description": {"old": "旧描述", "new": "新描述"},
        "tags": {"old": ["a"], "new": ["a", "b"]},
    }
    assert v2["snapshot"]["description"] == "新描述"
    assert v2["snapshot"]["tags"] == ["a", "b"]

    second = shared_http.patch(
        f"/projects/{pid}", json={"default_hyperparameters": {"lr": 0.2, "batch_size": 8}}
    ).json()
    assert second["version"] == 3
    assert second["versions"][-1]["changes"] == {
        "default_hyperparameters": {"old": {"lr": 0.1}, "new": {"lr": 0.2, "batch_size": 8}},
    }

    third = shared_http.patch(f"/projects/{pid}", json={"status": "已归档"}).json()
    assert third["version"] == 4
    assert third["versions"][-1]["changes"] == {"archived": {"old": False, "new": True}}

    versions = shared_http.get(f"/projects/{pid}/versions")
    assert versions.status_code == 200
    assert [v["version"] for v in versions.json()] == [1, 2, 3, 4]
    assert versions.json() == third["versions"]


def test_noop_patch_creates_no_version(shared_http):
    project = new_project(shared_http, description="描述", tags=["x"])
    pid = project["id"]

    for body in ({}, {"description": "描述"}, {"tags": ["x"]}, {"status": "未归档"}, {"default_hyperparameters": {}}):
        response = shared_http.patch(f"/projects/{pid}", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["version"] == 1, body
        assert response.json()["updated_at"] == project["updated_at"], body

    assert len(shared_http.get(f"/projects/{pid}/versions").json()) == 1


def test_partial_noop_patch_records_only_changed_fields(shared_http):
    project = new_project(shared_http, description="描述", objective="目标")
    body = shared_http.patch(f"/projects/{project['id']}", json={"description": "描述", "objective": "新目标"}).json()
    assert body["versions"][-1]["changes"] == {"objective": {"old": "目标", "new": "新目标"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   "}, "name"),  # name and owner are editable (tests/test_project_edit.py), never blank
        ({"owner": None}, "owner"),
        ({"status": "进行中"}, "status"),
        ({"tags": "a"}, "tags"),
        ({"default_hyperparameters": [1]}, "default_hyperparameters"),
    ],
)
def test_patch_rejects_invalid_body(shared_http, body, field):
    project = new_project(shared_http)

    response = shared_http.patch(f"/projects/{project['id']}", json=body)

    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]
    assert shared_http.get(f"/projects/{project['id']}").json()["version"] == 1


# Detail


def test_detail_has_runs_run_count_and_versions(shared_http):
    project = new_project(shared_http)
    first = new_run(shared_http, project["id"], name="第一次")
    second = new_run(shared_http, project["id"])

    body = shared_http.get(f"/projects/{project['id']}").json()

    assert body["run_count"] == 2
    assert [r["id"] for r in body["runs"]] == [first["id"], second["id"]]
    assert [r["name"] for r in body["runs"]] == ["第一次", "run-002"]
    assert {r["status"] for r in body["runs"]} == {"排队中"}
    assert [v["version"] for v in body["versions"]] == [1]


# Runs in projects


def test_archived_project_refuses_runs(shared_http):
    project = new_project(shared_http)
    shared_http.patch(f"/projects/{project['id']}", json={"status": "已归档"})

    response = shared_http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"})

    assert response.status_code == 409, response.text
    assert "已归档" in response.json()["detail"]
    assert shared_http.get(f"/projects/{project['id']}").json()["run_count"] == 0

    shared_http.patch(f"/projects/{project['id']}", json={"status": "未归档"})
    new_run(shared_http, project["id"])


def test_runs_inherit_default_hyperparameters_and_record_version(shared_http):
    project = new_project(
        shared_http, default_hyperparameters={"learning_rate": 3e-5, "batch_size": 16, "warmup_steps": 100}
    )

    first = new_run(shared_http, project["id"], hyperparameters={"batch_size": 64, "num_epochs": 2})
    assert first["hyperparameters"] == {"learning_rate": 3e-5, "batch_size": 64, "warmup_steps": 100, "num_epochs": 2}
    assert first["project_version"] == 1

    shared_http.patch(f"/projects/{project['id']}", json={"default_hyperparameters": {"learning_rate": 1e-4}})
    second = new_run(shared_http, project["id"])
    assert second["hyperparameters"] == {"learning_rate": 1e-4}
    assert second["project_version"] == 2

    stored = shared_http.get(f"/projects/{project['id']}/runs/{first['id']}").json()
    assert stored["hyperparameters"] == first["hyperparameters"]
    assert stored["project_version"] == 1


def test_unknown_project_is_404(shared_http):
    missing = "proj_doesnotexist"
    for response in (
        shared_http.get(f"/projects/{missing}"),
        shared_http.patch(f"/projects/{missing}", json={"description": "x"}),
        shared_http.get(f"/projects/{missing}/versions"),
        shared_http.get(f"/projects/{missing}/runs"),
        shared_http.post(f"/projects/{missing}/runs", json={"model": "m", "dataset": "d"}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"项目 {missing} 不存在"
