"""The store survives restarts and kills of the API process; the embedded client shares one store per folder."""

import signal
import uuid
from datetime import datetime, timezone

import duckdb
import httpx
import pytest
from conftest import ApiProcess

from ltm import ApiError, Client
from ltm.store.migrations import MIGRATIONS

LATEST_SCHEMA = MIGRATIONS[-1][0]


def seed_data(http: httpx.Client) -> dict:
    """A project with a run that has logs, metrics, an artifact with two tags and a PATCHed state."""
    project = http.post(
        "/projects",
        json={
            "name": f"持久化-{uuid.uuid4().hex[:8]}",
            "owner": "小李",
            "default_hyperparameters": {"learning_rate": 3e-5},
        },
    ).json()
    pid = project["id"]
    assert http.patch(f"/projects/{pid}", json={"description": "第二版"}).status_code == 200
    run = http.post(f"/projects/{pid}/runs", json={"model": "m", "dataset": "中文语料"}).json()
    base = f"/projects/{pid}/runs/{run['id']}"
    assert http.patch(base, json={"status": "运行中", "progress": 0.5, "current_step": 50}).status_code == 200
    lines = [{"timestamp": "2024-01-02T10:00:00Z", "message": f"第 {i} 行 ✓"} for i in range(30)]
    assert http.post(base + "/logs", json={"batch_id": "logs-1", "lines": lines}).status_code == 200
    points = [{"name": "loss", "step": i, "value": 2 - i / 100, "timestamp": "2024-01-02T10:00:00Z"} for i in range(50)]
    assert http.post(base + "/metrics", json={"batch_id": "metrics-1", "points": points}).status_code == 200
    ckpt = http.post(
        base + "/artifacts",
        json={
            "type": "checkpoint",
            "name": "第 50 步检查点",
            "step": 50,
            "path": f"s3://artifacts/{pid}/{run['id']}/ckpt.pt",
        },
    ).json()
    assert http.post(base + f"/artifacts/{ckpt['id']}/tag", json={"tag": "候选"}).status_code == 200
    assert http.post(base + f"/artifacts/{ckpt['id']}/tag", json={"tag": "发布", "notes": "上线"}).status_code == 200
    return {"pid": pid, "base": base, "run_id": run["id"], "lines": lines}


def snapshot(http: httpx.Client, data: dict) -> dict:
    base = data["base"]
    views = {
        "project": http.get(f"/projects/{data['pid']}"),
        "run": http.get(base),
        "logs": http.get(base + "/logs", params={"page_size": 500}),
        "metrics": http.get(base + "/metrics"),
        "artifacts": http.get(base + "/artifacts"),
    }
    for name, response in views.items():
        assert response.status_code == 200, (name, response.text)
    return {name: response.json() for name, response in views.items()}


def check_contents(state: dict) -> None:
    assert state["project"]["version"] == 2 and len(state["project"]["versions"]) == 2
    assert state["project"]["status"] == "进行中"
    assert state["run"]["status"] == "运行中" and state["run"]["progress"] == 0.5
    assert state["logs"]["total"] == 30
    assert [i["message"] for i in state["logs"]["items"]] == [f"第 {i} 行 ✓" for i in range(30)]
    assert state["metrics"]["series"][0]["total_points"] == 50
    assert state["run"]["metrics"] == {"loss": 1.51}
    assert [t["value"] for t in state["artifacts"]["items"][0]["tags"]] == ["候选", "发布"]


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def start(home) -> ApiProcess:
    return ApiProcess(home).start()


def test_data_survives_clean_restart(home):
    api = start(home)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        data = seed_data(http)
        before = snapshot(http, data)
    check_contents(before)
    api.stop(signal.SIGTERM)

    assert not (home / "ltm.duckdb.wal").exists()

    again = start(home)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as http:
            after = snapshot(http, data)
            assert after == before
            # Ingest idempotency outlives the process too.
            again_logs = http.post(data["base"] + "/logs", json={"batch_id": "logs-1", "lines": data["lines"]})
            assert again_logs.json()["duplicate"] is True
            assert http.get(f"/runs/{data['run_id']}").status_code == 200
    finally:
        again.stop()


def test_acknowledged_data_survives_sigkill(home):
    api = start(home)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        data = seed_data(http)
        before = snapshot(http, data)
    api.stop(signal.SIGKILL)

    again = start(home)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as http:
            after = snapshot(http, data)
    finally:
        again.stop()
    assert after == before
    check_contents(after)


def test_log_order_for_equal_timestamps_continues_after_restart(home):
    api = start(home)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        data = seed_data(http)
    api.stop(signal.SIGKILL)

    again = start(home)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as http:
            late = [{"timestamp": "2024-01-02T10:00:00Z", "message": f"重启后 {i}"} for i in range(3)]
            http.post(data["base"] + "/logs", json={"batch_id": "logs-2", "lines": late})
            messages = [
                i["message"] for i in http.get(data["base"] + "/logs", params={"page_size": 500}).json()["items"]
            ]
    finally:
        again.stop()
    assert messages == [f"第 {i} 行 ✓" for i in range(30)] + [f"重启后 {i}" for i in range(3)]


def test_schema_version_is_recorded_once(home):
    for _ in range(2):
        api = start(home)
        health = httpx.get(api.url + "/health").json()
        assert (health["status"], health["schema_version"]) == ("ok", LATEST_SCHEMA)
        api.stop()

    with duckdb.connect(str(home / "ltm.duckdb"), read_only=True) as con:
        versions = [row[0] for row in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert versions == [version for version, _ in MIGRATIONS]
    assert {
        "projects",
        "project_versions",
        "runs",
        "logs",
        "metrics",
        "ingest_batches",
        "artifacts",
        "artifact_tags",
        "schema_version",
    } <= tables


def test_local_client_in_process(tmp_path, monkeypatch):
    monkeypatch.delenv("LTM_ARTIFACT_ROOT", raising=False)  # artifacts default to <home>/artifacts
    sdk = Client.local(tmp_path / "store")
    project = sdk.create_project("本地项目", "小李", default_hyperparameters={"learning_rate": 1e-4})
    run = sdk.create_run(project.id, model="m", dataset="d", hyperparameters={"batch_size": 8})

    assert run.status == "排队中"
    assert run.hyperparameters == {"learning_rate": 1e-4, "batch_size": 8}
    assert sdk.report(project.id, run.id, status="运行中", progress=0.2).status == "运行中"
    artifact = sdk.register_artifact(
        project.id,
        run.id,
        "checkpoint",
        "检查点",
        str(tmp_path / "store" / "artifacts" / project.id / run.id / "c.pt"),
        step=10,
    )
    assert sdk.tag_artifact(project.id, run.id, artifact.id, "候选").tags[0].value == "候选"
    assert sdk.health().schema_version == LATEST_SCHEMA
    assert (tmp_path / "store" / "ltm.duckdb").exists()
    with pytest.raises(ApiError) as error:
        sdk.get_project("proj_missing")
    assert error.value.status_code == 404
    with pytest.raises(ApiError) as error:
        sdk.register_artifact(project.id, run.id, "checkpoint", "越界", "/etc/passwd")
    assert error.value.status_code == 422


def test_two_local_clients_on_one_folder_share_the_store(tmp_path):
    folder = tmp_path / "shared"
    first = Client.local(folder)
    second = Client.local(str(folder / ".." / "shared"))
    elsewhere = Client.local(tmp_path / "other")

    project = first.create_project("共享项目", "小李")
    run = first.create_run(project.id, model="m", dataset="d")
    first.close()

    assert second.get_project(project.id).run_count == 1
    assert second.find_run(run.id).project_id == project.id
    assert [p.id for p in second.list_projects()] == [project.id]
    assert elsewhere.list_projects() == []
    with pytest.raises(ApiError) as error:
        second.create_project("共享项目", "别人")
    assert error.value.status_code == 409


def test_opening_an_older_store_migrates_it_without_losing_rows(tmp_path):
    import duckdb

    from ltm.store import Database
    from ltm.store.migrations import MIGRATIONS

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    for statement in MIGRATIONS[0][1]:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute(
        "INSERT INTO runs (id, project_id, name, status, progress, model, dataset, hyperparameters, resources, "
        "metrics, created_at, updated_at, start_step, current_step, project_version) VALUES "
        "('run_old', 'proj_old', '旧运行', '已完成', 1.0, 'm', 'd', '{}', '{}', '{\"loss\": 0.5}', now(), now(), "
        "0, 10, 1)"
    )
    con.close()

    db = Database(path)
    try:
        assert db.schema_version == MIGRATIONS[-1][0] > 1
        assert db.fetch_one("SELECT name, metrics, metric_steps FROM runs WHERE id = 'run_old'") == (
            "旧运行",
            '{"loss": 0.5}',
            "{}",
        )
    finally:
        db.close()


def test_a_store_from_before_metric_blocks_downsamples_its_old_points_the_same(tmp_path):
    import duckdb

    from ltm.store import Database
    from ltm.store import metrics as metric_store
    from ltm.store.migrations import MIGRATIONS

    path = tmp_path / "v5.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    for version, statements in MIGRATIONS[:5]:
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    con.execute(
        "INSERT INTO metrics SELECT 'run_old', 'loss', i, 1.0 / (i + 1), TIMESTAMP '2024-01-01' FROM range(200000) t(i)"
    )
    con.close()

    db = Database(path)
    try:
        [series] = metric_store.downsample(db, "run_old", None, 100)
    finally:
        db.close()
    assert series["total_points"] == 200_000
    assert len(series["points"]) == 100
    assert series["points"][0]["max"] == 1.0
    assert series["points"][-1]["step"] == 199_999
    assert series["points"][-1]["last"] == 1.0 / 200_000


def test_a_store_from_before_line_numbers_pages_its_old_lines_and_numbers_new_ones_after_them(tmp_path):
    import duckdb

    from ltm import arrow_batches
    from ltm.api.ingest_payload import _stored
    from ltm.store import Database, ingest
    from ltm.store import logs as log_store
    from ltm.store.migrations import MIGRATIONS

    path = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    for version, statements in MIGRATIONS[:6]:
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    con.execute(
        "INSERT INTO logs SELECT 'run_old', 1000 - i, TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND, 'INFO', "
        "'旧 ' || i FROM range(1000) t(i)"
    )
    con.execute(
        "INSERT INTO runs (id, project_id, name, status, progress, model, dataset, hyperparameters, resources, "
        "metrics, created_at, updated_at, start_step, current_step, project_version) "
        "VALUES ('run_old', 'proj_old', '旧运行', '运行中', 0, 'm', 'd', '{}', '{}', '{}', now(), now(), 0, 0, 1)"
    )
    con.close()

    db = Database(path)
    try:
        later = arrow_batches.micros(datetime(2024, 1, 2, tzinfo=timezone.utc))
        assert ingest.append_logs(db, "run_old", "new", _stored(arrow_batches.log_table([later], ["INFO"], ["新"])))
        total, rows = log_store.page(db, "run_old", offset=990, limit=50)
        in_order = db.fetch_one("SELECT in_order FROM log_runs WHERE run_id = 'run_old'")[0]
    finally:
        db.close()
    assert in_order
    assert total == 1001
    assert [row["message"] for row in rows] == [f"旧 {i}" for i in range(990, 1000)] + ["新"]
