"""Every curl example of the seed README, sent as written (ids replaced by real ones), answers as documented.

Each test gets a fresh API server (`fresh_http`): the examples create the same project name and list by the same
owner, so they need an empty store each.
"""

from datetime import datetime, timedelta, timezone

JSON = {"Content-Type": "application/json"}

# The -d bodies of the seed's curl examples, byte for byte.
PROJECT_BODY = """{
          "name": "中文摘要系统",
          "description": "对科研文章进行自动摘要",
          "objective": "降低阅读时间",
          "task_type": "文本摘要",
          "base_model": "llama-2-13b",
          "owner": "小李",
          "tags": ["科研", "第一阶段"],
          "default_hyperparameters": {
            "learning_rate": 3e-5,
            "batch_size": 16
          }
        }"""

RUN_BODY = """{
          "name": "run-001",
          "model": "llama-2-13b",
          "dataset": "中文科技论文语料",
          "hyperparameters": {
            "learning_rate": 2e-5,
            "batch_size": 32,
            "num_epochs": 3
          },
          "resources": {
            "gpu_type": "A100",
            "gpu_count": 4
          }
        }"""

RESUME_BODY = """{
          "name": "run-002",
          "model": "llama-2-13b",
          "dataset": "中文科技论文语料",
          "hyperparameters": {
            "learning_rate": 1.5e-5
          }
        }"""

TAG_BODY = '{"tag": "发布", "notes": "在验证集上 BLEU 32.5，通过复核"}'


def utc(value: str) -> datetime:
    """An ISO 8601 datetime in UTC, as the seed's examples show them."""
    assert isinstance(value, str) and value.endswith("Z"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def create_seed_project(http) -> dict:
    response = http.post("/projects", content=PROJECT_BODY.encode(), headers=JSON)
    assert response.status_code == 201, response.text
    return response.json()


def create_seed_run(http, project_id: str) -> dict:
    response = http.post(f"/projects/{project_id}/runs", content=RUN_BODY.encode(), headers=JSON)
    assert response.status_code == 201, response.text
    return response.json()


def register_checkpoint(http, project_id: str, run_id: str) -> dict:
    response = http.post(
        f"/projects/{project_id}/runs/{run_id}/artifacts",
        json={
            "type": "checkpoint",
            "name": "第 2000 步检查点",
            "path": f"s3://artifacts/{project_id}/{run_id}/ckpt_001.pt",
            "size_bytes": 123,
            "step": 2000,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_create_project(fresh_http):
    before = datetime.now(timezone.utc)
    response = fresh_http.post("/projects", content=PROJECT_BODY.encode(), headers=JSON)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("proj_") and len(body["id"]) > len("proj_")
    assert body["name"] == "中文摘要系统"
    assert body["description"] == "对科研文章进行自动摘要"
    assert body["status"] == "草稿"
    assert body["objective"] == "降低阅读时间"
    assert body["task_type"] == "文本摘要"
    assert body["base_model"] == "llama-2-13b"
    assert body["owner"] == "小李"
    assert body["tags"] == ["科研", "第一阶段"]
    assert body["default_hyperparameters"] == {"learning_rate": 3e-5, "batch_size": 16}
    assert isinstance(body["default_hyperparameters"]["batch_size"], int)
    assert body["runs"] == []
    created = utc(body["created_at"])
    assert before - timedelta(seconds=5) <= created <= datetime.now(timezone.utc) + timedelta(seconds=5)
    assert utc(body["updated_at"]) == created


def test_list_projects_by_owner(fresh_http):
    project = create_seed_project(fresh_http)
    other = fresh_http.post("/projects", json={"name": "别人的项目", "owner": "小王"})
    assert other.status_code == 201

    response = fresh_http.get("/projects?owner=%E5%B0%8F%E6%9D%8E")

    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list) and len(items) == 1
    item = items[0]
    assert item["id"] == project["id"]
    assert item["name"] == "中文摘要系统"
    assert item["status"] == "草稿"
    assert item["owner"] == "小李"
    assert utc(item["created_at"]) == utc(project["created_at"])


def test_get_project(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])
    moved = fresh_http.patch(f"/projects/{project['id']}/runs/{run['id']}", json={"status": "运行中", "progress": 0.42})
    assert moved.status_code == 200, moved.text

    response = fresh_http.get(f"/projects/{project['id']}")

    assert response.status_code == 200
    body = response.json()
    for field in (
        "id",
        "name",
        "objective",
        "task_type",
        "base_model",
        "owner",
        "created_at",
        "tags",
        "default_hyperparameters",
    ):
        assert body[field] == project[field], field
    assert body["status"] == "进行中"
    assert utc(body["updated_at"]) >= utc(project["created_at"])
    assert len(body["runs"]) == 1
    summary = body["runs"][0]
    assert summary["id"] == run["id"]
    assert summary["name"] == "run-001"
    assert summary["status"] == "运行中"
    assert summary["progress"] == 0.42
    assert utc(summary["started_at"]) >= utc(run["created_at"])


def test_create_run(fresh_http):
    project = create_seed_project(fresh_http)

    response = fresh_http.post(f"/projects/{project['id']}/runs", content=RUN_BODY.encode(), headers=JSON)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("run_")
    assert body["project_id"] == project["id"]
    assert body["name"] == "run-001"
    assert body["status"] == "排队中"
    assert body["progress"] == 0.0 and isinstance(body["progress"], float)
    assert body["started_at"] is None
    assert body["artifacts"] == []
    assert body["model"] == "llama-2-13b"
    assert body["dataset"] == "中文科技论文语料"
    assert body["hyperparameters"] == {"learning_rate": 2e-5, "batch_size": 32, "num_epochs": 3}
    assert body["resources"] == {"gpu_type": "A100", "gpu_count": 4}


def test_get_run(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])
    base = f"/projects/{project['id']}/runs/{run['id']}"
    assert (
        fresh_http.patch(base, json={"status": "运行中", "progress": 0.65, "gpu_utilization": 0.83}).status_code == 200
    )
    now = datetime.now(timezone.utc).isoformat()
    sent = fresh_http.post(
        base + "/metrics",
        json={
            "batch_id": "seed",
            "points": [
                {"name": "train_loss", "step": 500, "value": 1.72, "timestamp": now},
                {"name": "eval_rouge_l", "step": 500, "value": 38.4, "timestamp": now},
            ],
        },
    )
    assert sent.status_code == 200, sent.text

    response = fresh_http.get(f"/projects/{project['id']}/runs/{run['id']}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == run["id"]
    assert body["project_id"] == project["id"]
    assert body["name"] == "run-001"
    assert body["status"] == "运行中"
    assert body["progress"] == 0.65
    assert body["metrics"] == {"train_loss": 1.72, "eval_rouge_l": 38.4}
    assert utc(body["started_at"]) >= utc(run["created_at"])
    assert utc(body["updated_at"]) >= utc(body["started_at"])
    assert body["gpu_utilization"] == 0.83
    assert body["artifacts"] == []


def test_cancel_run(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])

    response = fresh_http.post(f"/projects/{project['id']}/runs/{run['id']}/cancel")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == run["id"]
    assert body["project_id"] == project["id"]
    assert body["name"] == "run-001"
    assert body["status"] == "已取消"
    assert body["progress"] == 0.0 and isinstance(body["progress"], float)
    assert utc(body["cancelled_at"]) >= utc(run["created_at"])
    assert isinstance(body["artifacts"], list)


def test_get_logs_page(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])
    base = f"/projects/{project['id']}/runs/{run['id']}"
    start = datetime(2024, 1, 2, 10, 0, tzinfo=timezone.utc)
    lines = [
        {
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "level": "INFO",
            "message": f"第 {i * 10} 步 - loss=1.86 lr=2e-5",
        }
        for i in range(45)
    ]
    assert fresh_http.post(base + "/logs", json={"batch_id": "seed", "lines": lines}).status_code == 200

    response = fresh_http.get(f"/projects/{project['id']}/runs/{run['id']}/logs?page=2&page_size=20")

    assert response.status_code == 200
    body = response.json()
    assert body["page"] == 2
    assert body["page_size"] == 20
    assert body["total"] == 45
    assert [item["message"] for item in body["items"]] == [line["message"] for line in lines[20:40]]
    first = body["items"][0]
    assert utc(first["timestamp"]) == start + timedelta(seconds=20)
    assert first["level"] == "INFO"


def test_list_artifacts(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])
    checkpoint = register_checkpoint(fresh_http, project["id"], run["id"])
    event = fresh_http.post(
        f"/projects/{project['id']}/runs/{run['id']}/artifacts",
        json={
            "type": "event",
            "name": "TensorBoard 日志",
            "path": f"s3://artifacts/{project['id']}/{run['id']}/tensorboard",
        },
    )
    assert event.status_code == 201, event.text

    response = fresh_http.get(f"/projects/{project['id']}/runs/{run['id']}/artifacts")

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == [checkpoint["id"], event.json()["id"]]
    ckpt, tensorboard = items
    assert ckpt["id"].startswith("ckpt_")
    assert ckpt["name"] == "第 2000 步检查点"
    assert ckpt["type"] == "checkpoint"
    assert ckpt["path"] == f"s3://artifacts/{project['id']}/{run['id']}/ckpt_001.pt"
    assert ckpt["size_bytes"] == 123
    assert ckpt["tags"] == []
    utc(ckpt["created_at"])
    assert tensorboard["name"] == "TensorBoard 日志"
    assert tensorboard["type"] == "event"
    assert tensorboard["path"] == f"s3://artifacts/{project['id']}/{run['id']}/tensorboard"
    assert tensorboard["size_bytes"] is None
    assert tensorboard["tags"] == []
    assert utc(tensorboard["created_at"]) >= utc(ckpt["created_at"])


def test_resume_run(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])
    checkpoint = register_checkpoint(fresh_http, project["id"], run["id"])

    response = fresh_http.post(
        f"/projects/{project['id']}/runs/{run['id']}/resume?source_artifact_id={checkpoint['id']}",
        content=RESUME_BODY.encode(),
        headers=JSON,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("run_") and body["id"] != run["id"]
    assert body["project_id"] == project["id"]
    assert body["name"] == "run-002"
    assert body["status"] == "排队中"
    assert body["resumed_from"] == checkpoint["id"]
    assert body["progress"] == 0.0
    assert body["started_at"] is None
    assert body["artifacts"] == []
    assert body["hyperparameters"] == {"learning_rate": 1.5e-5, "batch_size": 32, "num_epochs": 3}
    assert body["resources"] == {"gpu_type": "A100", "gpu_count": 4}


def test_tag_artifact(fresh_http):
    project = create_seed_project(fresh_http)
    run = create_seed_run(fresh_http, project["id"])
    checkpoint = register_checkpoint(fresh_http, project["id"], run["id"])

    response = fresh_http.post(
        f"/projects/{project['id']}/runs/{run['id']}/artifacts/{checkpoint['id']}/tag",
        content=TAG_BODY.encode(),
        headers=JSON,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == checkpoint["id"]
    assert body["name"] == "第 2000 步检查点"
    assert body["type"] == "checkpoint"
    assert body["path"] == checkpoint["path"]
    assert utc(body["created_at"]) == utc(checkpoint["created_at"])
    assert len(body["tags"]) == 1
    tag = body["tags"][0]
    assert tag["value"] == "发布"
    assert tag["notes"] == "在验证集上 BLEU 32.5，通过复核"
    assert utc(tag["applied_at"]) >= utc(checkpoint["created_at"])
