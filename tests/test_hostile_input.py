"""Hostile and malformed input over real HTTP: size limits, field limits, unicode, bad JSON, odd ids.

Every refusal is a 4xx with a Chinese message that names the field (or the id), never a 500, and
nothing refused is half-written.
"""

import json
import unicodedata
import uuid
from urllib.parse import unquote

import httpx
import pytest

from ltm.client import ApiError, Client
from ltm.vocabulary import field_label
from tests.helpers import unique

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
T0 = "2024-05-01T00:00:00Z"


def created(response: httpx.Response) -> dict:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
def project(shared_http) -> dict:
    return created(shared_http.post("/projects", json={"name": unique(), "owner": "测试"}))


@pytest.fixture
def run(shared_http, project) -> dict:
    return created(shared_http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "d"}))


@pytest.fixture
def checkpoint(shared_http, run) -> dict:
    return created(
        shared_http.post(
            url(run, "/artifacts"),
            json={
                "type": "checkpoint",
                "name": "c",
                "step": 1,
                "path": f"s3://artifacts/{run['project_id']}/{run['id']}/c",
            },
        )
    )


def url(run: dict, suffix: str = "") -> str:
    return f"/projects/{run['project_id']}/runs/{run['id']}{suffix}"


def nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def chunks(total: int, size: int = 256 * 1024):
    """A body sent with Transfer-Encoding: chunked, so the server cannot know its size in advance."""
    while total > 0:
        yield b" " * min(size, total)
        total -= size


def assert_refused(response: httpx.Response, status: int, field: str | None = None, message: str | None = None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
        assert f"{field_label(field)}：" in body["detail"], body
    if message is not None:
        assert message in body["detail"], body
    return body


def log_total(http, run: dict) -> int:
    return http.get(url(run, "/logs")).json()["total"]


# Body size: refused before anything parses it


def test_a_body_over_1_mib_is_refused_from_its_content_length_before_parsing(shared_http):
    response = shared_http.post("/projects", content=b"{" * (MIB + 1), headers=JSON)  # not JSON: 413, not 422

    assert response.request.headers["content-length"] == str(MIB + 1)
    assert_refused(response, 413)
    assert response.json() == {"detail": "请求体过大（上限 1 MiB）"}
    assert shared_http.get("/health").status_code == 200


def test_a_chunked_body_over_1_mib_is_refused_while_streaming(shared_http, run):
    response = shared_http.patch(url(run), content=chunks(2 * MIB), headers=JSON)

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.json() == {"detail": "请求体过大（上限 1 MiB）"}
    assert response.status_code == 413
    assert shared_http.get(url(run)).json()["status"] == "排队中"


def test_a_body_of_exactly_1_mib_is_accepted(shared_http):
    name = unique()
    document = json.dumps({"name": name, "owner": "测试"}).encode()
    response = shared_http.post("/projects", content=document + b" " * (MIB - len(document)), headers=JSON)

    assert response.request.headers["content-length"] == str(MIB)
    assert created(response)["name"] == name


@pytest.mark.parametrize("kind", ["logs", "metrics"])
def test_ingest_batches_may_be_16_mib(shared_http, run, kind):
    if kind == "logs":
        body = {"batch_id": "big", "lines": [{"timestamp": T0, "message": "长" * 3000}] * 1000}  # ~9 MB
    else:
        body = {
            "batch_id": "big",
            "points": [{"name": f"loss_{i % 7}", "step": i, "value": i / 3, "timestamp": T0} for i in range(40_000)],
        }  # ~3.5 MB
    encoded = json.dumps(body, ensure_ascii=False).encode()
    assert 2 * MIB < len(encoded) < 16 * MIB

    response = shared_http.post(url(run, f"/{kind}"), content=encoded, headers=JSON)

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(body.get("lines", body.get("points", [])))


@pytest.mark.parametrize("kind", ["logs", "metrics"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_ingest_batches_over_16_mib_are_refused_and_nothing_is_stored(shared_http, run, kind, chunked):
    size = 16 * MIB + 1
    response = shared_http.post(url(run, f"/{kind}"), content=chunks(size) if chunked else b" " * size, headers=JSON)

    assert response.json() == {"detail": "请求体过大（上限 16 MiB）"}
    assert response.status_code == 413
    assert log_total(shared_http, run) == 0
    assert shared_http.get(url(run, "/metrics")).json() == {"series": []}


# Field limits: 422 naming the field


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        (
            "",
            {"name": "x", "owner": "y", "default_hyperparameters": {"blob": "x" * 70_000}},
            "default_hyperparameters",
            "JSON 对象过大（上限 64 KB）",
        ),
        (
            "",
            {"name": "x", "owner": "y", "default_hyperparameters": {"a": nested(32)}},
            "default_hyperparameters",
            "JSON 嵌套层数不能超过 32",
        ),
        ("", {"name": "x", "owner": "y", "tags": ["t" * 65]}, "tags.0", "长度不能超过 64"),
        ("", {"name": "x", "owner": "y", "description": "述" * 5001}, "description", "长度不能超过 5000"),
        (
            "/runs",
            {"model": "m", "dataset": "d", "hyperparameters": {"blob": "x" * 70_000}},
            "hyperparameters",
            "JSON 对象过大",
        ),
        ("/runs", {"model": "m", "dataset": "d", "resources": {"notes": "x" * 70_000}}, "resources", "JSON 对象过大"),
        (
            "/runs",
            {"model": "m", "dataset": "d", "resources": {"gpu_count": 5000}},
            "resources.gpu_count",
            "必须小于或等于 4096",
        ),
        ("/runs", {"model": "m", "dataset": "  "}, "dataset", "不能为空"),
    ],
)
def test_project_and_run_field_limits(shared_http, project, path, body, field, message):
    response = shared_http.post(f"/projects/{project['id']}{path}" if path else "/projects", json=body)

    assert_refused(response, 422, field, message)
    assert shared_http.get(f"/projects/{project['id']}").json()["run_count"] == 0


@pytest.mark.parametrize(
    ("suffix", "body", "field", "message"),
    [
        (
            "/logs",
            {"batch_id": "b", "lines": [{"timestamp": T0, "message": "长" * 10_001}]},
            "lines.0.message",
            "长度不能超过 10000",
        ),
        (
            "/logs",
            {"batch_id": "b", "lines": [{"timestamp": T0, "message": ""}] * 50_001},
            "lines",
            "元素数量不能超过 50000",
        ),
        ("/logs", {"batch_id": "b" * 129, "lines": []}, "batch_id", "长度不能超过 128"),
        (
            "/logs",
            {"batch_id": "b", "lines": [{"timestamp": "9999-12-31T23:59:59-01:00", "message": "m"}]},
            "lines.0.timestamp",
            "超出可表示的时间范围",
        ),
        (
            "/metrics",
            {"batch_id": "b", "points": [{"name": "l", "step": 1, "value": 1.0, "timestamp": T0}] * 50_001},
            "points",
            "元素数量不能超过 50000",
        ),
        (
            "/metrics",
            {"batch_id": "b", "points": [{"name": "指" * 201, "step": 1, "value": 1.0, "timestamp": T0}]},
            "points.0.name",
            "长度不能超过 200",
        ),
        (
            "/metrics",
            {"batch_id": "b", "points": [{"name": "l", "step": 2**63, "value": 1.0, "timestamp": T0}]},
            "points.0.step",
            "必须小于或等于",
        ),
        (
            "/metrics",
            {
                "batch_id": "b",
                "points": [{"name": "l", "step": 1, "value": 1.0, "timestamp": "0001-01-01T00:00:00+01:00"}],
            },
            "points.0.timestamp",
            "超出可表示的时间范围",
        ),
        ("", {"progress": None}, "progress", "必须是数字"),
        ("", {"current_step": None}, "current_step", "必须是整数"),
        ("", {"status": None}, "status", "取值必须是"),
        ("", {"message": "息" * 5001}, "message", "长度不能超过 5000"),
        (
            "/artifacts",
            {"type": "checkpoint", "name": "c", "path": "s3://artifacts/a\u0000b"},
            "path",
            "不能包含 NUL 字符",
        ),
        (
            "/artifacts",
            {"type": "checkpoint", "name": "c", "path": "s3://artifacts/" + "p" * 2000},
            "path",
            "长度不能超过 2000",
        ),
    ],
)
def test_run_body_field_limits(shared_http, run, suffix, body, field, message):
    method = "PATCH" if suffix == "" else "POST"
    response = shared_http.request(method, url(run, suffix), json=body)

    assert_refused(response, 422, field, message)
    assert log_total(shared_http, run) == 0
    assert shared_http.get(url(run)).json() | {"updated_at": None} == run | {"updated_at": None}


def test_tag_notes_limit(shared_http, run, checkpoint):
    response = shared_http.post(
        url(run, f"/artifacts/{checkpoint['id']}/tag"), json={"tag": "候选", "notes": "注" * 2001}
    )

    assert_refused(response, 422, "notes", "长度不能超过 2000")
    assert shared_http.get(url(run, "/artifacts")).json()["items"][0]["tags"] == []


@pytest.mark.parametrize(
    ("path", "params", "field", "message"),
    [
        ("/projects", {"owner": "主" * 201}, "owner", "长度不能超过 200"),
        ("/projects", {"tag": "标" * 65}, "tag", "长度不能超过 64"),
        ("/projects", {"q": "搜" * 201}, "q", "长度不能超过 200"),
        ("/projects", {"status": "完成"}, "status", "取值必须是"),
        ("{run}/logs", {"page_size": 0}, "page_size", "必须大于或等于 1"),
        ("{run}/logs", {"page_size": 501}, "page_size", "必须小于或等于 500"),
        ("{run}/logs", {"page": 0}, "page", "必须大于或等于 1"),
        ("{run}/logs", {"page": "一"}, "page", "必须是整数"),
        ("{run}/logs", {"q": "查" * 501}, "q", "长度不能超过 500"),
        ("{run}/logs", {"level": "LOUD"}, "level", "取值必须是"),
        ("{run}/logs", {"start_time": "昨天"}, "start_time", "必须是 ISO 8601 时间"),
        ("{run}/logs", {"end_time": "9999-12-31T23:59:59-14:00"}, "end_time", "超出可表示的时间范围"),
        ("{run}/metrics", {"names": ",".join(f"m{i}" for i in range(101))}, "names", "元素数量不能超过 100"),
        ("{run}/metrics", [("names", f"m{i}") for i in range(101)], "names", "元素数量不能超过 100"),
        ("{run}/metrics", {"names": "指" * 201}, "names", "长度不能超过 200"),
        ("{run}/metrics", {"max_points": 0}, "max_points", "必须大于或等于 1"),
        ("{run}/metrics", {"max_points": 10_001}, "max_points", "必须小于或等于 10000"),
    ],
)
def test_query_limits(shared_http, run, path, params, field, message):
    response = shared_http.get(path.replace("{run}", url(run)), params=params)

    assert_refused(response, 422, field, message)


def test_resume_source_artifact_id_length(shared_http, run):
    response = shared_http.post(url(run, "/resume"), params={"source_artifact_id": "c" * 101})

    assert_refused(response, 422, "source_artifact_id", "长度不能超过 100")


# Unicode round-trips: long text exactly; short text people type (names, owners, tags) in its NFKC spelling,
# without characters that do not show (issue 12, item 17; tests/test_web_attacks.py)

CHINESE = "中文摘要系统"
EMOJI = "🚀 训练 👩‍👩‍👧‍👦 🇨🇳"  # the family is joined by zero-width joiners
COMBINING = "e\u0301 a\u0308 n\u0303 Z\u0351\u0352"  # decomposed: long text keeps it so
RTL = "\u200fمرحبا بالعالم שלום"  # starts with a right-to-left mark
ASTRAL = "𠜎𠜱𝄞"
TEXTS = [CHINESE, EMOJI, COMBINING, RTL, ASTRAL]
VISIBLE_EMOJI = "🚀 训练 👍🏽 🇨🇳"
VISIBLE_RTL = "مرحبا بالعالم שלום"
SHORT_TEXTS = [CHINESE, VISIBLE_EMOJI, COMBINING, VISIBLE_RTL, ASTRAL]


def nfkc(value):
    if isinstance(value, list):
        return [nfkc(item) for item in value]
    return unicodedata.normalize("NFKC", value)


def test_unicode_project_fields_round_trip(shared_http):
    suffix = uuid.uuid4().hex[:6]
    short = {
        "name": f"{CHINESE} {VISIBLE_EMOJI} {COMBINING} {VISIBLE_RTL} {ASTRAL} {suffix}",
        "owner": f"{VISIBLE_RTL}{suffix}",
        "task_type": VISIBLE_EMOJI,
        "base_model": ASTRAL,
        "tags": [t[:64] for t in SHORT_TEXTS],
    }
    long = {
        "description": "\n".join(TEXTS),
        "objective": COMBINING,
        "default_hyperparameters": {text: text for text in TEXTS},
    }

    project = created(shared_http.post("/projects", json={**short, **long}))
    stored = shared_http.get(f"/projects/{project['id']}").json()

    for key, value in short.items():
        assert project[key] == nfkc(value) == stored[key], key
    for key, value in long.items():
        assert project[key] == value == stored[key], key
    assert stored["versions"][0]["snapshot"]["name"] == nfkc(short["name"])
    assert [p["id"] for p in shared_http.get("/projects", params={"owner": short["owner"]}).json()] == [project["id"]]
    assert project["id"] in [p["id"] for p in shared_http.get("/projects", params={"tag": COMBINING}).json()]
    assert project["id"] in [p["id"] for p in shared_http.get("/projects", params={"q": f"{ASTRAL} {suffix}"}).json()]


def test_decomposed_and_precomposed_names_are_one_name(shared_http):
    suffix = uuid.uuid4().hex[:6]
    composed = created(shared_http.post("/projects", json={"name": f"caf\u00e9-{suffix}", "owner": "测试"}))
    decomposed = shared_http.post("/projects", json={"name": f"cafe\u0301-{suffix}", "owner": "测试"})

    assert decomposed.status_code == 409, decomposed.text
    assert shared_http.get(f"/projects/{composed['id']}").json()["name"] == f"caf\u00e9-{suffix}"
    assert [p["id"] for p in shared_http.get("/projects", params={"q": f"cafe\u0301-{suffix}"}).json()] == [
        composed["id"]
    ]


def test_unicode_run_logs_metrics_and_artifacts_round_trip_exactly(shared_http, project):
    run = created(
        shared_http.post(
            f"/projects/{project['id']}/runs",
            json={
                "name": VISIBLE_EMOJI,
                "model": ASTRAL,
                "dataset": RTL,
                "hyperparameters": {COMBINING: CHINESE},
                "entrypoint": "python train.py",  # a script run takes any hyperparameter names
                "resources": {"gpu_type": VISIBLE_EMOJI, "机房": RTL},
            },
        )
    )
    fetched = shared_http.get(url(run)).json()
    assert (fetched["name"], fetched["model"], fetched["dataset"]) == (VISIBLE_EMOJI, ASTRAL, RTL)
    assert fetched["hyperparameters"] == {COMBINING: CHINESE}
    assert fetched["resources"] == {"gpu_type": VISIBLE_EMOJI, "机房": RTL}

    lines = [
        {"timestamp": f"2024-05-01T00:00:0{i}Z", "level": "WARNING", "message": text} for i, text in enumerate(TEXTS)
    ]
    assert created(shared_http.post(url(run, "/logs"), json={"batch_id": EMOJI, "lines": lines}))["batch_id"] == EMOJI
    assert [line["message"] for line in shared_http.get(url(run, "/logs")).json()["items"]] == TEXTS
    assert [line["message"] for line in shared_http.get(url(run, "/logs"), params={"q": "שלום"}).json()["items"]] == [
        RTL
    ]
    assert [
        line["message"] for line in shared_http.get(url(run, "/logs"), params={"q": "a\u0308"}).json()["items"]
    ] == [COMBINING]

    points = [{"name": text[:200], "step": 1, "value": 0.5, "timestamp": T0} for text in TEXTS]
    created(shared_http.post(url(run, "/metrics"), json={"batch_id": "指标", "points": points}))
    series = shared_http.get(url(run, "/metrics"), params={"names": [EMOJI, RTL]}).json()["series"]
    assert sorted(s["name"] for s in series) == sorted([EMOJI, RTL])
    assert set(shared_http.get(url(run)).json()["metrics"]) == set(TEXTS)

    artifact = created(
        shared_http.post(
            url(run, "/artifacts"),
            json={
                "type": "checkpoint",
                "name": COMBINING,
                "path": f"s3://artifacts/{project['id']}/{run['id']}/{EMOJI}",
            },
        )
    )
    tagged = created(shared_http.post(url(run, f"/artifacts/{artifact['id']}/tag"), json={"tag": "发布", "notes": RTL}))
    assert (tagged["name"], tagged["path"].rsplit("/", 1)[1], tagged["tags"][0]["notes"]) == (
        nfkc(COMBINING),
        EMOJI,
        RTL,
    )


def test_nul_and_control_characters_in_text_round_trip(shared_http, run):
    text = "a\u0000b\tc\u0007d\u001be"
    reported = created(shared_http.patch(url(run), json={"message": text}))
    created(
        shared_http.post(url(run, "/logs"), json={"batch_id": "ctl", "lines": [{"timestamp": T0, "message": text}]})
    )

    assert reported["message"] == text
    assert shared_http.get(url(run, "/logs")).json()["items"][0]["message"] == text


# Malformed JSON and wrong content types


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b'{"name": "a", "owner": ', "body", "请求体不是合法的 JSON"),
        (b"{'name': 'a'}", "body", "请求体不是合法的 JSON（第 2 个字符附近）"),
        (b'{"name": "a", "owner": "b",}', "body", "请求体不是合法的 JSON"),
        (b"\xff\xfe{}", "body", "请求体不是合法的 JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "请求体无法解析为 JSON（嵌套过深或数字位数过多）"),
        (
            b'{"name": "a", "owner": "b", "default_hyperparameters": {"n": ' + b"9" * 5000 + b"}}",
            "body",
            "请求体无法解析为 JSON（嵌套过深或数字位数过多）",
        ),
        (b'{"name": "\\ud800", "owner": "b"}', "name", "必须是合法的 Unicode 字符串"),
        (
            b'{"name": "a", "owner": "b", "default_hyperparameters": {"k": "\\udfff"}}',
            "default_hyperparameters",
            "Unicode",
        ),
        (
            b'{"name": "a", "owner": "b", "default_hyperparameters": {"lr": Infinity}}',
            "default_hyperparameters",
            "NaN 或 Infinity",
        ),
        (b"[]", "body", "必须是 JSON 对象"),
        (b"null", "body", "缺少必填字段"),
        (b"", "body", "缺少必填字段"),
    ],
)
def test_malformed_json_is_a_chinese_422_naming_the_body(shared_http, raw, field, message):
    before = len(shared_http.get("/projects").json())
    response = shared_http.post("/projects", content=raw, headers=JSON)

    body = assert_refused(response, 422, field, message)
    assert body["detail"].startswith("请求参数有误 - ")
    assert len(shared_http.get("/projects").json()) == before


@pytest.mark.parametrize(
    ("headers", "received"),
    [
        ({"Content-Type": "text/plain"}, "收到 text/plain"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "收到 application/x-www-form-urlencoded"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "收到 multipart/form-data"),
        ({"Content-Type": "application/xml"}, "收到 application/xml"),
        ({}, "请求未设置 Content-Type"),
    ],
)
def test_a_body_that_is_not_json_is_a_415(shared_http, run, headers, received):
    document = json.dumps({"name": unique(), "owner": "测试"}).encode()
    for path in ("/projects", url(run, "/logs")):
        response = shared_http.post(path, content=document, headers=headers)

        body = assert_refused(response, 415, message="请求体必须是 JSON，Content-Type 应为 application/json")
        assert received in body["detail"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.ltm+json"]
)
def test_json_media_type_variants_are_accepted(shared_http, content_type):
    document = json.dumps({"name": unique(), "owner": "测试"}).encode()
    assert shared_http.post("/projects", content=document, headers={"Content-Type": content_type}).status_code == 201


def test_resume_without_a_body_needs_no_content_type(shared_http, run, checkpoint):
    response = shared_http.post(url(run, "/resume"), params={"source_artifact_id": checkpoint["id"]})

    assert created(response)["resumed_from"] == checkpoint["id"]


# Odd ids are simply not found

ODD_IDS = [
    pytest.param("proj_missing", id="short"),
    pytest.param("proj_0123456789ab", id="well-formed-unknown"),
    pytest.param("PROJ_0123456789AB", id="upper-case"),
    pytest.param("proj_0123456789abc", id="13-hex"),
    pytest.param("run_0123456789ab", id="other-kind"),
    pytest.param("x" * 8000, id="very-long"),
    pytest.param("%00", id="nul"),
    pytest.param("%FF%FE", id="invalid-utf8"),
    pytest.param("%20", id="space"),
    pytest.param("%2E%2E", id="dot-dot"),
    pytest.param("a%2Fb", id="encoded-slash"),
    pytest.param("..%2F..%2Fetc%2Fpasswd", id="encoded-traversal"),
    pytest.param("%E9%A1%B9%E7%9B%AE%F0%9F%98%80", id="unicode"),
    pytest.param("proj_0123456789ab%3Fx%3D1", id="encoded-query"),
    pytest.param("' OR 1=1 --", id="sql"),
]


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    detail = response.json()["detail"]
    assert "不存在" in detail and len(detail) < 300, detail


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_project_ids_are_404(shared_http, odd):
    for method, path, body in [
        ("GET", f"/projects/{odd}", None),
        ("PATCH", f"/projects/{odd}", {"description": "x"}),
        ("GET", f"/projects/{odd}/versions", None),
        ("GET", f"/projects/{odd}/runs", None),
        ("POST", f"/projects/{odd}/runs", {"model": "m", "dataset": "d"}),
    ]:
        assert_not_found(shared_http.request(method, path, json=body))


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_run_and_artifact_ids_are_404(shared_http, run, checkpoint, odd):
    base = f"/projects/{run['project_id']}/runs/{odd}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"status": "运行中"}),
        ("POST", base + "/cancel", None),
        ("GET", base + "/logs", None),
        ("POST", base + "/logs", {"batch_id": "b", "lines": []}),
        ("GET", base + "/metrics", None),
        ("GET", base + "/artifacts", None),
        ("GET", f"/runs/{odd}", None),
        ("POST", url(run, f"/artifacts/{odd}/tag"), {"tag": "候选"}),
    ]:
        assert_not_found(shared_http.request(method, path, json=body))
    assert_not_found(shared_http.post(url(run, "/resume"), params={"source_artifact_id": unquote(odd)[:100]}))
    assert shared_http.get(url(run)).json()["status"] == "排队中"


def test_a_long_id_is_not_echoed_in_full(shared_http):
    response = shared_http.get("/projects/proj_" + "f" * 5000)

    assert_not_found(response)
    assert response.json()["detail"] == f"项目 proj_{'f' * 59}… 不存在"


def test_unknown_paths_and_methods_answer_in_chinese(shared_http):
    missing = shared_http.get("/projects/a/b/c")
    wrong_method = shared_http.put("/health")

    assert missing.status_code == 404 and missing.json() == {"detail": "路径 /projects/a/b/c 不存在"}
    assert wrong_method.status_code == 405 and wrong_method.json() == {"detail": "路径 /health 不支持 PUT 请求"}


@pytest.mark.parametrize("odd", ["..", ".", "proj_x?owner=y", "proj_x#frag", "项目 😀", "run_0123456789ab/cancel"])
def test_the_sdk_sends_an_odd_id_as_one_path_segment(shared_api, run, odd):
    with Client(shared_api.url) as sdk:
        with pytest.raises(ApiError) as project_error:
            sdk.get_project(odd)
        with pytest.raises(ApiError) as run_error:
            sdk.get_run(run["project_id"], odd)

    assert project_error.value.status_code == run_error.value.status_code == 404
    if "/" in odd:  # sent as %2F, which would otherwise be decoded before routing and reach …/cancel
        assert run_error.value.detail == f"路径 /projects/{run['project_id']}/runs/{odd} 不存在（ID 中不能包含“/”）"
    else:
        assert (project_error.value.detail, run_error.value.detail) == (f"项目 {odd} 不存在", f"运行 {odd} 不存在")


def test_the_sdk_cannot_be_steered_to_another_endpoint_by_dot_segments(shared_api):
    with Client(shared_api.url) as sdk, pytest.raises(ApiError) as error:
        sdk.get_project("../trainers")  # unquoted, httpx would normalise this to GET /trainers

    assert error.value.status_code == 404
    assert error.value.detail == "路径 /projects/../trainers 不存在（ID 中不能包含“/”）"
