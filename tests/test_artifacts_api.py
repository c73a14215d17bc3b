"""Artifacts: registration under the artifact root, listing, and the append-only tag history."""

import uuid
from datetime import datetime

import httpx
import pytest

from ltm.vocabulary import field_label
from tests.helpers import new_run


@pytest.fixture
def run(shared_http) -> dict:
    return new_run(shared_http)


def url(run: dict, suffix: str = "") -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}/artifacts{suffix}"


def path_for(run: dict, name: str) -> str:
    return f"s3://artifacts/{run['project_id']}/{run['id']}/{name}"


def register(http, run: dict, type: str = "checkpoint", name: str = "第 2000 步检查点", **fields) -> dict:
    body = {"type": type, "name": name, "path": path_for(run, f"{type}-{uuid.uuid4().hex[:6]}"), **fields}
    response = http.post(url(run), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def listed(http, run: dict) -> list[dict]:
    response = http.get(url(run))
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.mark.parametrize(
    ("type", "prefix"),
    [
        ("checkpoint", "ckpt_"),
        ("event", "tb_"),
        ("evaluation", "eval_"),
        ("config", "cfg_"),
    ],
)
def test_register_artifact(shared_http, run, type, prefix):
    path = path_for(run, "file.bin")

    response = shared_http.post(
        url(run), json={"type": type, "name": "工件", "path": path, "size_bytes": 123, "step": 2000}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith(prefix) and len(body["id"]) > len(prefix) + 4
    assert body["run_id"] == run["id"]
    assert body["type"] == type
    assert body["name"] == "工件"
    assert body["path"] == path
    assert body["size_bytes"] == 123
    assert body["step"] == 2000
    assert body["tags"] == []
    assert datetime.fromisoformat(body["created_at"]) >= datetime.fromisoformat(run["created_at"])
    assert listed(shared_http, run) == [body]


def test_optional_fields_default_to_null(shared_http, run):
    body = register(shared_http, run, type="event", name="TensorBoard 日志")
    assert body["size_bytes"] is None and body["step"] is None


@pytest.mark.parametrize(
    "path",
    [
        "s3://other-bucket/p/r/ckpt.pt",
        "s3://artifacts-evil/p/r/ckpt.pt",
        "s3://artifacts/../secrets/key.pem",
        "s3://artifacts/p/r/../../../etc/passwd",
        "s3://artifacts",
        "s3://artifacts/",
        "gs://artifacts/p/r/ckpt.pt",
        "file:///etc/passwd",
        "/etc/passwd",
        "artifacts/p/r/ckpt.pt",
    ],
)
def test_path_outside_artifact_root_is_rejected(shared_http, run, path):
    response = shared_http.post(url(run), json={"type": "checkpoint", "name": "越界", "path": path})

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "path" in detail and "s3://artifacts" in detail
    assert listed(shared_http, run) == []


def test_dot_segments_in_an_object_store_path_are_refused(shared_http, run):
    """An object store does not resolve '..': the key would be stored literally, so it names no clear place."""
    response = shared_http.post(
        url(run),
        json={
            "type": "config",
            "name": "配置",
            "path": f"s3://artifacts/{run['project_id']}/x/../{run['id']}/cfg.json",
        },
    )
    assert response.status_code == 422, response.text
    assert ". 或 .. 段" in response.json()["detail"]
    assert listed(shared_http, run) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "path": "s3://artifacts/a/b"}, "type"),
        ({"type": "model", "name": "x", "path": "s3://artifacts/a/b"}, "type"),
        ({"type": "checkpoint", "path": "s3://artifacts/a/b"}, "name"),
        ({"type": "checkpoint", "name": " ", "path": "s3://artifacts/a/b"}, "name"),
        ({"type": "checkpoint", "name": "x", "path": ""}, "path"),
        ({"type": "checkpoint", "name": "x", "path": "s3://artifacts/a/b", "size_bytes": -1}, "size_bytes"),
        ({"type": "checkpoint", "name": "x", "path": "s3://artifacts/a/b", "size_bytes": 2**64}, "size_bytes"),
        ({"type": "checkpoint", "name": "x", "path": "s3://artifacts/a/b", "step": -1}, "step"),
        ({"type": "checkpoint", "name": "x", "path": "s3://artifacts/a/b", "step": 2**63}, "step"),
        ({"type": "checkpoint", "name": "x", "path": "s3://artifacts/a/b", "tags": []}, "tags"),
    ],
)
def test_register_validation(shared_http, run, body, field):
    response = shared_http.post(url(run), json=body)
    assert response.status_code == 422, response.text
    assert field_label(field) in response.json()["detail"]
    assert listed(shared_http, run) == []


def test_list_artifacts_of_one_run_in_order(shared_http, run):
    other = new_run(shared_http, run["project_id"])
    first = register(shared_http, run, type="checkpoint")
    second = register(shared_http, run, type="evaluation", name="第 1 轮评估结果")
    register(shared_http, other)

    items = listed(shared_http, run)

    assert [a["id"] for a in items] == [first["id"], second["id"]]
    assert listed(shared_http, new_run(shared_http)) == []
    run_view = shared_http.get(f"/projects/{run['project_id']}/runs/{run['id']}").json()
    assert [a["id"] for a in run_view["artifacts"]] == [first["id"], second["id"]]


def test_unknown_or_foreign_run_is_404(shared_http, run):
    other_project_run = new_run(shared_http)
    wrong = {"project_id": other_project_run["project_id"], "id": run["id"]}
    for response in (
        shared_http.get(url(wrong)),
        shared_http.post(url(wrong), json={"type": "checkpoint", "name": "x", "path": path_for(run, "x")}),
        shared_http.get(url({"project_id": run["project_id"], "id": "run_missing"})),
    ):
        assert response.status_code == 404, response.text


# Tags


def tag(http, run: dict, artifact_id: str, **body) -> httpx.Response:
    return http.post(url(run, f"/{artifact_id}/tag"), json=body)


def test_tag_history_is_append_only(shared_http, run):
    ckpt = register(shared_http, run)

    first = tag(shared_http, run, ckpt["id"], tag="候选", notes="验证集 loss 最低")
    second = tag(shared_http, run, ckpt["id"], tag="发布")

    assert first.status_code == 200 and second.status_code == 200
    assert [t["value"] for t in first.json()["tags"]] == ["候选"]
    tags = second.json()["tags"]
    assert [(t["value"], t["notes"]) for t in tags] == [("候选", "验证集 loss 最低"), ("发布", None)]
    assert datetime.fromisoformat(tags[0]["applied_at"]) <= datetime.fromisoformat(tags[1]["applied_at"])
    assert tags[0] == first.json()["tags"][0]
    assert listed(shared_http, run)[0]["tags"] == tags

    refused = tag(shared_http, run, ckpt["id"], tag="候选", notes="再次评估")
    assert refused.status_code == 409 and "当前发布" in refused.json()["detail"]  # un-releasing is 归档, by an admin
    third = tag(shared_http, run, ckpt["id"], tag="归档", notes="再次评估").json()["tags"]
    assert [t["value"] for t in third] == ["候选", "发布", "归档"]
    assert third[:2] == tags


def test_tags_belong_to_one_artifact(shared_http, run):
    first, second = register(shared_http, run), register(shared_http, run)
    tag(shared_http, run, first["id"], tag="发布")
    items = {a["id"]: a for a in listed(shared_http, run)}
    assert [t["value"] for t in items[first["id"]]["tags"]] == ["发布"]
    assert items[second["id"]]["tags"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tag": "上线"}, "tag"),
        ({"tag": "release"}, "tag"),
        ({"tag": ""}, "tag"),
        ({}, "tag"),
        ({"tag": "发布", "notes": "x" * 2001}, "notes"),
        ({"tag": "发布", "by": "小李"}, "by"),
    ],
)
def test_invalid_tag_body(shared_http, run, body, field):
    ckpt = register(shared_http, run)

    response = tag(shared_http, run, ckpt["id"], **body)

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert field_label(field) in detail
    if field == "tag" and body:
        assert all(value in detail for value in ("候选", "发布", "归档"))
    assert listed(shared_http, run)[0]["tags"] == []


def test_tag_unknown_artifact_is_404(shared_http, run):
    response = tag(shared_http, run, "ckpt_missing", tag="发布")
    assert response.status_code == 404
    assert "ckpt_missing" in response.json()["detail"]


def test_tag_artifact_of_another_run_is_404(shared_http, run):
    other = new_run(shared_http, run["project_id"])
    foreign = register(shared_http, other)

    response = tag(shared_http, run, foreign["id"], tag="发布")

    assert response.status_code == 404
    assert foreign["id"] in response.json()["detail"]
    assert listed(shared_http, other)[0]["tags"] == []


@pytest.mark.parametrize("type", ["event", "evaluation", "config"])
def test_only_checkpoints_can_be_tagged(shared_http, run, type):
    artifact = register(shared_http, run, type=type, name="非检查点")

    response = tag(shared_http, run, artifact["id"], tag="候选")

    assert response.status_code == 422
    assert type in response.json()["detail"] and "检查点" in response.json()["detail"]
    assert listed(shared_http, run)[0]["tags"] == []
