"""The Streamlit console driven by AppTest against the real API process (no mocks).

The tests share the session's API server (`shared_api`): each makes uniquely named projects (and owners and tags
where a page filters by them) and looks only at those. Tests that need an API of their own start one explicitly.
"""

import json
import socket
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
from streamlit.testing.v1 import AppTest

from ltm.models import LogBatch, LogLine, MetricBatch, MetricPoint
from tests.conftest import ApiProcess
from tests.console_helpers import labelled, open_console, open_tab, texts
from tests.helpers import unique

pytestmark = pytest.mark.usefixtures("fresh_cache")

LEVELS = ["INFO", "DEBUG", "WARNING", "ERROR"]
LOG_START = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=30)


def page_link_queries(at: AppTest) -> list[str]:
    return [link.proto.query_string for link in at.page_link]


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def make_project(shared_client, name: str | None = None, owner="小李", **fields):
    """A project named `name` made unique (default 中文摘要系统-…), so tests can share one API server."""
    fields.setdefault("default_hyperparameters", {"learning_rate": 3e-5, "batch_size": 16})
    return shared_client.create_project(unique(name or "中文摘要系统"), owner, base_model="llama-2-13b", **fields)


def seed_run(shared_client, project, lines: int = 120, **run_fields):
    """A running run with metrics, `lines` logs cycling INFO/DEBUG/WARNING/ERROR a second apart, and a checkpoint."""
    run = shared_client.create_run(project.id, "llama-2-13b", "中文科技论文语料", **run_fields)
    shared_client.report(
        project.id, run.id, status="运行中", progress=0.4, current_step=400, total_steps=1000, gpu_utilization=0.83
    )
    points = [
        MetricPoint(name=name, step=step, value=value, timestamp=LOG_START + timedelta(seconds=step))
        for step in range(0, 400, 4)
        for name, value in (("train_loss", 3 / (1 + step / 100)), ("eval_rouge_l", 20 + step / 20))
    ]
    shared_client.send_metrics(project.id, run.id, MetricBatch(batch_id=f"{run.id}-m", points=points))
    shared_client.send_logs(
        project.id,
        run.id,
        LogBatch(
            batch_id=f"{run.id}-l",
            lines=[
                LogLine(
                    timestamp=LOG_START + timedelta(seconds=i),
                    level=LEVELS[i % 4],
                    message=f"第 {i} 步 - loss={3 / (1 + i / 100):.3f}",
                )
                for i in range(lines)
            ],
        ),
    )
    checkpoint = shared_client.register_artifact(
        project.id,
        run.id,
        type="checkpoint",
        name="第 200 步检查点",
        path=f"s3://artifacts/{project.id}/{run.id}/ckpt_200.pt",
        size_bytes=123_456_789,
        step=200,
    )
    return shared_client.get_run(project.id, run.id), checkpoint


# 项目


def test_projects_page_lists_projects_and_filters_them(console_env, shared_client):
    li, wang, research = unique("小李"), unique("小王"), unique("科研")
    summary = make_project(shared_client, "中文摘要系统", li, tags=[research])
    support = make_project(shared_client, "客服问答", wang, tags=["客服"])
    archived = make_project(shared_client, "旧项目", wang)
    shared_client.update_project(archived.id, status="已归档")

    at = open_console()
    table = at.dataframe[0].value
    assert {summary.name, support.name, archived.name} <= set(table["名称"])
    assert f"project?project_id={archived.id}" in list(table["详情"])

    labelled(at.text_input, "负责人").set_value(wang).run()
    assert sorted(at.dataframe[0].value["名称"]) == sorted([support.name, archived.name])
    labelled(at.selectbox, "状态").select("已归档").run()
    assert list(at.dataframe[0].value["名称"]) == [archived.name]
    labelled(at.selectbox, "状态").select("全部").run()
    labelled(at.text_input, "负责人").set_value("").run()
    labelled(at.text_input, "标签").set_value(research).run()
    assert list(at.dataframe[0].value["名称"]) == [summary.name]
    labelled(at.text_input, "标签").set_value("").run()
    labelled(at.text_input, "名称搜索").set_value(support.name.removeprefix("客服")).run()
    assert list(at.dataframe[0].value["名称"]) == [support.name]
    labelled(at.text_input, "名称搜索").set_value(unique("不存在的项目")).run()
    assert not at.dataframe
    assert "没有符合条件的项目。" in texts(at.info)


def test_archive_and_restore_from_the_projects_page(console_env, shared_client):
    project = make_project(shared_client)
    at = open_console()
    at.button(key="toggle_archive").click().run()
    assert shared_client.get_project(project.id).status.value == "已归档"
    assert f"已归档项目“{project.name}”" in texts(at.success)
    at.button(key="toggle_archive").click().run()
    assert shared_client.get_project(project.id).status.value == "草稿"


def fill_create_form(at: AppTest, name: str, hyperparameters: str, owner: str = "小李") -> AppTest:
    for key, value in [
        ("new_name", name),
        ("new_owner", owner),
        ("new_task_type", "文本摘要"),
        ("new_base_model", "llama-2-13b"),
        ("new_tags", "科研， 第一阶段"),
    ]:
        at.text_input(key=key).set_value(value)
    at.text_area(key="new_description").set_value("对科研文章进行自动摘要")
    at.text_area(key="new_objective").set_value("降低阅读时间")
    at.text_area(key="new_hyperparameters").set_value(hyperparameters)
    return at.button(key="create_project_submit").click().run()


def test_create_project_form_creates_it_in_the_api(console_env, shared_client):
    name, owner = unique("新项目"), unique("小李")
    at = fill_create_form(open_console(), name, '{"learning_rate": 2e-5, "batch_size": 32}', owner)
    assert not at.exception
    [created] = shared_client.list_projects(owner=owner)
    project = shared_client.get_project(created.id)
    assert (project.name, project.owner, project.task_type, project.base_model) == (
        name,
        owner,
        "文本摘要",
        "llama-2-13b",
    )
    assert (project.description, project.objective) == ("对科研文章进行自动摘要", "降低阅读时间")
    assert project.tags == ["科研", "第一阶段"]
    assert project.default_hyperparameters == {"learning_rate": 2e-5, "batch_size": 32}
    assert f"已创建项目“{name}”" in texts(at.success)
    assert f"project_id={created.id}" in page_link_queries(at)
    assert at.dataframe[0].value["名称"].iloc[0] == name, "the newest project is listed first"


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"learning_rate": 2e-5,', "默认超参数不是合法的 JSON：第 1 行第 24 列附近格式有误"),
        ("[1, 2]", '默认超参数必须是 JSON 对象，例如 {"learning_rate": 3e-5}'),
        ('{"learning_rate": NaN}', "默认超参数不能包含 NaN 或 Infinity"),
    ],
)
def test_invalid_hyperparameters_json_shows_chinese_error_and_creates_nothing(
    console_env, shared_client, text, message
):
    owner = unique("小李")
    at = fill_create_form(open_console(), unique("新项目"), text, owner)
    assert message in texts(at.error)
    assert shared_client.list_projects(owner=owner) == []


def test_duplicate_project_name_shows_the_conflict(console_env, shared_client):
    name = make_project(shared_client, "重复项目").name
    at = fill_create_form(open_console(), name, "{}")
    assert f"操作冲突（409）：项目名称“{name}”已存在，请换一个名称" in texts(at.error)
    assert [p.name for p in shared_client.list_projects()].count(name) == 1


def test_too_long_name_is_refused_in_chinese(console_env, shared_client):
    owner = unique("小李")
    at = fill_create_form(open_console(), "长" * 201, "{}", owner)
    assert "输入有误：名称：长度不能超过 200" in texts(at.error)
    assert shared_client.list_projects(owner=owner) == []


# 项目详情


def test_project_detail_shows_versions_and_the_edit_form_creates_version_2(console_env, shared_client):
    project = make_project(shared_client, description="旧描述")
    at = open_console("project", project_id=project.id, tab="版本历史")
    assert at.title[0].value == project.name
    assert list(labelled_table(at, "版本")["版本"]) == [1]

    open_tab(at, "编辑")
    labelled(at.text_area, "描述").set_value("新描述")
    labelled(at.text_area, "默认超参数（JSON 对象）").set_value('{"learning_rate": 1e-4, "batch_size": 16}')
    at.button(key="edit_project_submit").click().run()

    updated = shared_client.get_project(project.id)
    assert updated.version == 2
    assert updated.description == "新描述"
    assert updated.default_hyperparameters == {"learning_rate": 1e-4, "batch_size": 16}
    assert "已保存，当前为版本 2" in texts(at.success)
    assert at.session_state["tab"] == "编辑", "a save keeps its tab open"
    open_tab(at, "版本历史")
    assert list(labelled_table(at, "版本")["版本"]) == [2, 1]
    diff = labelled_table(at, "字段")
    assert diff.to_dict("records") == [
        {"字段": "描述", "版本 1": "旧描述", "版本 2": "新描述"},
        {"字段": "默认超参数.learning_rate", "版本 1": "3e-05", "版本 2": "0.0001"},
    ]


def test_edit_without_changes_creates_no_version(console_env, shared_client):
    project = make_project(shared_client)
    at = open_console("project", project_id=project.id, tab="编辑")
    at.button(key="edit_project_submit").click().run()
    assert "没有修改，未生成新版本。" in texts(at.info)
    assert shared_client.get_project(project.id).version == 1


def test_edit_form_sets_the_default_trainer_that_the_run_form_then_offers(console_env, shared_client):
    project = make_project(shared_client, default_hyperparameters={})
    at = open_console("project", project_id=project.id)
    assert "没有默认超参数" in " ".join(texts(at.caption))
    trainer = labelled(open_tab(at, "编辑").selectbox, "默认训练器")
    assert trainer.value is None and trainer.options[0] == "不设置（使用 simulated）"
    trainer.select("simulated")
    at.button(key="edit_project_submit").click().run()

    updated = shared_client.get_project(project.id)
    assert (updated.version, updated.default_trainer) == (2, "simulated")
    assert updated.versions[-1].changes["default_trainer"].model_dump() == {"old": None, "new": "simulated"}
    assert "默认训练器" in list(labelled_table(open_tab(at, "版本历史"), "变更")["变更"])[0]
    assert labelled(open_tab(at, "发起运行").selectbox, "训练器").value == "simulated"

    labelled(open_tab(at, "编辑").selectbox, "默认训练器").select_index(0)
    at.button(key="edit_project_submit").click().run()
    assert shared_client.get_project(project.id).default_trainer is None


def test_visibility_is_chosen_at_creation_and_changed_in_the_edit_form(console_env, shared_client):
    name, owner = unique("私有项目"), unique("小李")
    at = open_console()
    labelled(at.selectbox, "可见范围").select("私有")
    at = fill_create_form(at, name, "{}", owner)
    [created] = shared_client.list_projects(owner=owner)
    assert created.visibility.value == "私有"

    at = open_console("project", project_id=created.id)
    assert "**可见范围**：私有" in [m.value for m in at.markdown]
    visibility = labelled(open_tab(at, "编辑").selectbox, "可见范围")
    assert (visibility.value, visibility.options) == ("私有", ["团队可见", "私有"])
    visibility.select("团队可见")
    at.button(key="edit_project_submit").click().run()

    updated = shared_client.get_project(created.id)
    assert (updated.version, updated.visibility.value) == (2, "团队可见")
    assert updated.versions[-1].changes["visibility"].model_dump() == {"old": "私有", "new": "团队可见"}
    assert "可见范围" in list(labelled_table(open_tab(at, "版本历史"), "变更")["变更"])[0]


def labelled_table(at: AppTest, column: str):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with column {column!r}"
    return found[0]


def test_start_run_form_creates_a_run_with_the_merged_hyperparameters(console_env, shared_client):
    project = make_project(shared_client)
    at = open_console("project", project_id=project.id, tab="发起运行")
    hyperparameters = labelled(at.text_area, "超参数（JSON 对象，已填入项目默认值）")
    assert json.loads(hyperparameters.value) == {"learning_rate": 3e-5, "batch_size": 16}
    assert labelled(at.text_input, "模型 *").value == "llama-2-13b"

    hyperparameters.set_value('{"learning_rate": 1e-4, "warmup_steps": 10}')
    labelled(at.text_input, "数据集 *").set_value("中文科技论文语料")
    labelled(at.selectbox, "GPU 类型").select("H100")
    labelled(at.number_input, "GPU 数量").set_value(2)
    trainer = labelled(at.selectbox, "训练器")
    assert trainer.value == "simulated" and "simulated" in trainer.options[0]
    at.button(key="start_run_submit").click().run()

    [run] = shared_client.list_runs(project.id)
    assert run.trainer == "simulated"
    assert run.hyperparameters == {"learning_rate": 1e-4, "warmup_steps": 10}, "batch_size was deleted from the box"
    assert run.resources == {"gpu_type": "H100", "gpu_count": 2}
    assert (run.model, run.dataset, run.status.value) == ("llama-2-13b", "中文科技论文语料", "排队中")
    assert f"已创建运行 {run.name}（排队中）" in texts(at.success)
    assert f"project_id={project.id}&run_id={run.id}" in page_link_queries(at)
    runs = labelled_table(open_tab(at, "运行"), "进度")
    [link] = runs["名称"]  # the name is the link to the run page: its text follows the #
    assert link.startswith(f"run?project_id={project.id}&run_id={run.id}#")


def test_start_run_form_requires_a_dataset(console_env, shared_client):
    project = make_project(shared_client)
    at = open_console("project", project_id=project.id, tab="发起运行")
    at.button(key="start_run_submit").click().run()
    assert "请填写数据集" in texts(at.error)
    assert shared_client.list_runs(project.id) == []


def test_only_the_open_tab_is_drawn_and_the_launch_form_keeps_its_input_meanwhile(console_env, shared_client):
    project = make_project(shared_client)
    at = open_console("project", project_id=project.id, tab="发起运行")
    labelled(at.text_input, "数据集 *").set_value("中文科技论文语料").run()
    labelled(at.text_area, "超参数（JSON 对象，已填入项目默认值）").set_value('{"learning_rate": 1e-4}').run()

    open_tab(at, "运行")
    assert not [w for w in at.text_input if w.label == "数据集 *"], "the hidden launch form is not drawn"
    assert not [d for d in at.dataframe if "版本" in d.value.columns], "nor the hidden version history"
    open_tab(at, "发起运行")
    assert labelled(at.text_input, "数据集 *").value == "中文科技论文语料"
    assert labelled(at.text_area, "超参数（JSON 对象，已填入项目默认值）").value == '{"learning_rate": 1e-4}'


def test_project_runs_table_shows_progress_metrics_and_gpu(console_env, shared_client):
    project = make_project(shared_client)
    run, _ = seed_run(shared_client, project, lines=4)
    row = labelled_table(open_console("project", project_id=project.id, tab="运行"), "进度").iloc[0]
    shown_name = unquote(row["名称"].partition("#")[2])
    assert (shown_name, row["状态"], row["进度"], row["GPU 利用率"]) == (run.name, "运行中", 0.4, 0.83)
    assert row["train_loss"] == pytest.approx(run.metrics["train_loss"])


# 运行详情


def test_run_page_shows_status_progress_metrics_chart_logs_and_artifacts(console_env, shared_client, monkeypatch):
    monkeypatch.setenv("LTM_PREFECT_UI_URL", "http://prefect.example:4200/")
    project = make_project(shared_client)
    run, checkpoint = seed_run(shared_client, project)
    shared_client.report(project.id, run.id, flow_run_id="flow-123")
    at = open_console("run", project_id=project.id, run_id=run.id)

    assert at.title[0].value == f"运行 {run.name}"
    assert any("运行中" in m for m in texts(at.markdown))
    assert at.get("progress")[0].value == 40
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["GPU 利用率"] == "83%"
    assert metrics["train_loss"] == f"{run.metrics['train_loss']:.4g}"
    assert len(charts(at)) == 2
    assert any(c.startswith("共 120 条日志 · 跟随中：显示最新 50 条") for c in texts(at.caption))
    assert labelled_table(at, "级别")["内容"].iloc[0] == "第 119 步 - loss=1.370"
    artifacts = labelled_table(at, "路径")
    assert list(artifacts["ID"]) == [checkpoint.id]
    assert at.link_button[0].proto.url == "http://prefect.example:4200/runs/flow-run/flow-123"


def test_metric_series_choice_limits_the_charts(console_env, shared_client):
    project = make_project(shared_client)
    run, _ = seed_run(shared_client, project, lines=1)
    at = open_console("run", project_id=project.id, run_id=run.id)
    labelled(at.multiselect, "显示的指标").set_value(["eval_rouge_l"]).run()
    assert len(charts(at)) == 1
    assert any(c.startswith("eval_rouge_l：共 100 个点") for c in texts(at.caption))


def test_log_filters_and_pages_narrow_the_results(console_env, shared_client):
    project = make_project(shared_client)
    run, _ = seed_run(shared_client, project)
    at = open_console("run", project_id=project.id, run_id=run.id)
    at.toggle(key=f"log_pause_{run.id}").set_value(True).run()

    at.pagination[0].set_value(2).run()
    assert labelled_table(at, "级别")["内容"].iloc[0] == "第 50 步 - loss=2.000"

    labelled(at.selectbox, "最低级别").select("WARNING").run()
    logs = labelled_table(at, "级别")
    assert set(logs["级别"]) == {"WARNING", "ERROR"}
    assert "共 60 条日志，第 1 / 2 页" in texts(at.caption)

    labelled(at.selectbox, "最低级别").select("全部").run()
    labelled(at.text_input, "搜索内容").set_value("第 7 步").run()
    assert list(labelled_table(at, "级别")["内容"]) == ["第 7 步 - loss=2.804"]

    labelled(at.text_input, "搜索内容").set_value("")
    local_start = (LOG_START + timedelta(minutes=1)).astimezone().replace(tzinfo=None)
    labelled(at.text_input, "开始时间（可选）").set_value(f"{local_start:%Y-%m-%d %H:%M:%S}").run()
    assert "共 60 条日志，第 1 / 2 页" in texts(at.caption)
    assert labelled_table(at, "级别")["内容"].iloc[0] == "第 60 步 - loss=1.875"

    earlier = local_start - timedelta(minutes=1)
    labelled(at.text_input, "结束时间（可选）").set_value(f"{earlier:%Y-%m-%d %H:%M:%S}").run()
    assert "开始时间不能晚于结束时间" in texts(at.error)


def test_cancel_asks_for_confirmation_then_cancels_a_queued_run(console_env, shared_client):
    project = make_project(shared_client)
    run = shared_client.create_run(project.id, "llama-2-13b", "语料")
    at = open_console("run", project_id=project.id, run_id=run.id)

    at.button(key="cancel_run").click().run()
    assert shared_client.get_run(project.id, run.id).status.value == "排队中"
    assert any("确认取消运行" in w for w in texts(at.warning))
    at.button(key="cancel_back").click().run()
    assert not at.warning
    at.button(key="cancel_run").click().run()
    at.button(key="cancel_confirm").click().run()

    assert shared_client.get_run(project.id, run.id).status.value == "已取消"
    assert "运行已取消。" in texts(at.success)
    assert "cancel_run" not in [b.key for b in at.button]


def test_tagging_a_checkpoint_release_records_the_tag(console_env, shared_client):
    project = make_project(shared_client)
    run, checkpoint = seed_run(shared_client, project, lines=1)
    at = open_console("run", project_id=project.id, run_id=run.id)

    at.selectbox(key="tag_artifact").select(checkpoint.id)
    at.radio(key="tag_value").set_value("发布")
    at.text_input(key="tag_notes").set_value("验证集 BLEU 32.5，通过复核")
    at.button(key="tag_submit").click().run()
    assert not shared_client.list_releases(project.id).history, "发布 was applied before it was confirmed"
    at.button(key="release_confirm").click().run()

    stored = next(a for a in shared_client.list_artifacts(project.id, run.id) if a.id == checkpoint.id)
    assert [(t.value.value, t.notes) for t in stored.tags] == [("发布", "验证集 BLEU 32.5，通过复核")]
    assert "已为 第 200 步检查点 打上“发布”标签" in texts(at.success)
    history = labelled_table(at, "备注")
    assert history.iloc[0][["检查点", "标签", "备注"]].tolist() == [
        "第 200 步检查点",
        "发布",
        "验证集 BLEU 32.5，通过复核",
    ]


def test_resume_from_a_checkpoint_creates_a_linked_run(console_env, shared_client):
    project = make_project(shared_client)
    run, checkpoint = seed_run(shared_client, project, lines=1)
    at = open_console("run", project_id=project.id, run_id=run.id)

    at.selectbox(key="resume_artifact").select(checkpoint.id)
    at.text_input(key="resume_name").set_value("续训-1")
    at.text_area(key="resume_hp").set_value('{"learning_rate": 1e-5}')
    at.button(key="resume_submit").click().run()

    resumed = next(r for r in shared_client.list_runs(project.id) if r.id != run.id)
    assert (resumed.name, resumed.resumed_from, resumed.parent_run_id) == ("续训-1", checkpoint.id, run.id)
    assert resumed.start_step == 200
    assert resumed.hyperparameters == {**run.hyperparameters, "learning_rate": 1e-5}
    assert any(s.startswith("已从 第 200 步检查点 恢复，新运行 续训-1") for s in texts(at.success))
    assert f"project_id={project.id}&run_id={resumed.id}" in page_link_queries(at)
    assert any(link.value.startswith("续训-1") for link in at.page_link), "the parent lists its child run"

    child = open_console("run", project_id=project.id, run_id=resumed.id)
    assert any(f"从检查点 `{checkpoint.id}`（第 200 步）恢复" in m for m in texts(child.markdown))
    assert f"project_id={project.id}&run_id={run.id}" in page_link_queries(child)


def test_resume_with_invalid_override_json_creates_nothing(console_env, shared_client):
    project = make_project(shared_client)
    run, _ = seed_run(shared_client, project, lines=1)
    at = open_console("run", project_id=project.id, run_id=run.id)
    at.text_area(key="resume_hp").set_value('["learning_rate"]')
    at.button(key="resume_submit").click().run()
    assert any("覆盖的超参数必须是 JSON 对象" in e for e in texts(at.error))
    assert len(shared_client.list_runs(project.id)) == 1


def test_run_page_without_ids_lets_the_user_pick_them(console_env, shared_client):
    project = make_project(shared_client)
    run = shared_client.create_run(project.id, "llama-2-13b", "语料")
    at = open_console("run")
    labelled(at.selectbox, "选择项目").select(project.id).run()
    labelled(at.selectbox, "选择运行").select(run.id).run()
    assert at.title[0].value == f"运行 {run.name}"
    assert (at.query_params["project_id"], at.query_params["run_id"]) == (project.id, run.id)


def test_unknown_run_shows_not_found(console_env, shared_client):
    project = make_project(shared_client)
    at = open_console("run", project_id=project.id, run_id="run_missing")
    assert "未找到（404）：运行 run_missing 不存在" in texts(at.error)


# 对比


def test_compare_page_shows_hyperparameter_differences_and_metrics(console_env, shared_client):
    project = make_project(shared_client)
    first, _ = seed_run(shared_client, project, lines=1, name="基线")
    second, _ = seed_run(shared_client, project, lines=1, name="大学习率", hyperparameters={"learning_rate": 1e-4})
    at = open_console("compare", project_id=project.id, runs=f"{first.id},{second.id}")

    diff = labelled_table(at, "超参数")
    assert diff.to_dict("records") == [{"超参数": "learning_rate", "基线": "3e-05", "大学习率": "0.0001"}]
    labelled(at.checkbox, "显示全部超参数").check().run()
    assert {"batch_size", "learning_rate", "模型", "数据集"} <= set(labelled_table(at, "超参数")["超参数"])
    final = labelled_table(at, "指标").set_index("指标")
    assert final.loc["状态"].tolist() == ["运行中", "运行中"]
    assert final.loc["train_loss", "基线"] == f"{first.metrics['train_loss']:.4g}"
    assert len(charts(at)) == 2


def test_compare_page_asks_for_two_runs(console_env, shared_client):
    project = make_project(shared_client)
    run = shared_client.create_run(project.id, "llama-2-13b", "语料")
    at = open_console("compare", project_id=project.id, runs=run.id)
    assert "请选择至少两个运行进行对比。" in texts(at.info)
    assert labelled(at.multiselect, "运行（至少选择两个）").value == [run.id]


# API 不可用


@pytest.mark.parametrize(
    "page, params",
    [
        (None, {}),
        ("project", {"project_id": "proj_x"}),
        ("run", {"project_id": "proj_x", "run_id": "run_x"}),
        ("compare", {"project_id": "proj_x", "runs": "run_a,run_b"}),
    ],
)
def test_unreachable_api_shows_a_chinese_warning_not_an_exception(monkeypatch, page, params):
    monkeypatch.setenv("LTM_API_URL", closed_port_url())
    at = open_console(page, **params)
    assert any("暂时无法连接 API，稍后自动重试" in w for w in texts(at.warning))
    assert not at.error


def test_console_recovers_once_the_api_answers(tmp_path, monkeypatch):
    """An API of its own: it starts only after the console has tried it, on an empty store."""
    server = ApiProcess(tmp_path / "late")
    monkeypatch.setenv("LTM_API_URL", server.url)
    at = open_console()
    assert at.warning
    server.start()
    try:
        at.run()
        assert not at.warning
        assert "还没有项目，在下方创建第一个项目。" in texts(at.info)
    finally:
        server.stop()


def test_project_audit_tab_lists_who_did_what(console_env, shared_client):
    project = make_project(shared_client)
    run = shared_client.create_run(project.id, model="m", dataset="d")
    shared_client.cancel_run(project.id, run.id)
    at = open_console("project", project_id=project.id, tab="审计记录")
    audit = labelled_table(at, "操作者")
    assert {"创建项目", "创建运行", "取消运行"} <= set(audit["操作"])
    assert set(audit["操作者"]) == {"本地用户"}


def test_console_asks_for_a_token_when_the_api_requires_one(tmp_path, monkeypatch):
    """An API of its own, with authentication on."""
    api = ApiProcess(tmp_path / "home", LTM_AUTH="true").start()
    try:
        monkeypatch.setenv("LTM_API_URL", api.url)
        monkeypatch.delenv("LTM_TOKEN", raising=False)
        at = open_console("projects")
        assert not at.exception
        assert any("API 已开启认证" in text for text in texts(at.info))
        assert [t.label for t in at.sidebar.text_input] == ["访问令牌"]
    finally:
        api.stop()
