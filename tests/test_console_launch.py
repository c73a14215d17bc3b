"""The 发起运行 form driven by AppTest against the real API: the effective configuration before launch, Chinese
errors next to the form with nothing stored, numbers checked in Chinese, and an empty form after a launch."""

import json
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import answers, free_port, wait_until
from tests.console_helpers import APP, labelled
from tests.helpers import unique

pytestmark = pytest.mark.usefixtures("console_env")

BOX = "超参数（JSON 对象，已填入项目默认值）"


def run_form(project_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("views/project.py")
    at.query_params["project_id"] = project_id
    at.query_params["tab"] = "发起运行"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def effective(at: AppTest) -> dict[str, tuple[str, str]]:
    [table] = [d.value for d in at.dataframe if "来源" in d.value.columns]
    return {row["超参数"]: (row["取值"], row["来源"]) for row in table.to_dict("records")}


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def project(client, **defaults):
    return client.create_project(unique("发起项目"), "平台组", base_model="qwen-7b", default_hyperparameters=defaults)


def test_the_form_shows_what_will_run_and_follows_the_box(shared_client):
    made = project(shared_client, learning_rate=3e-5, warmup_steps=10)
    at = run_form(made.id)
    shown = effective(at)
    assert shown["learning_rate"] == ("3e-05", "项目默认")
    assert shown["warmup_steps"] == ("10", "项目默认")
    assert shown["batch_size"] == ("16", "训练器默认")
    assert shown["step_seconds"] == ("未设置", "训练器默认")
    assert not any("None" in str(cell) for d in at.dataframe for cell in d.value.to_numpy().ravel())
    assert any("训练器 simulated" in str(c.value) and "共 300 步" in str(c.value) for c in at.caption)

    labelled(at.text_area, BOX).set_value('{"learning_rate": 3e-5, "num_epochs": 1, "steps_per_epoch": 5}').run()
    shown = effective(at)
    assert shown["warmup_steps"] == ("0", "训练器默认"), "a default deleted from the box is not used"
    assert shown["num_epochs"] == ("1", "运行") and shown["learning_rate"] == ("3e-05", "项目默认")

    labelled(at.text_input, "数据集 *").set_value("语料")
    at.button(key="start_run_submit").click().run()
    [run] = shared_client.list_runs(made.id)
    assert run.hyperparameters == {"learning_rate": 3e-5, "num_epochs": 1, "steps_per_epoch": 5}
    assert f"已创建运行 {run.name}（排队中）" in [str(s.value) for s in at.success]
    assert labelled(at.text_input, "数据集 *").value == "", "the form is empty again after a launch"
    assert json.loads(labelled(at.text_area, BOX).value) == {"learning_rate": 3e-5, "warmup_steps": 10}


@pytest.mark.parametrize(
    "box, words",
    [
        ('{"lr": 0.001}', ["超参数 lr", "是否想写 learning_rate？"]),
        ('{"trainer": "tiny-lm"}', ["不能写 trainer", "「训练器」字段"]),
        ('{"batch_size": 0}', ["batch_size", "不小于 1"]),
        ('{"batch_size": ', ["超参数不是合法的 JSON"]),
    ],
)
def test_a_refused_configuration_is_explained_in_chinese_and_nothing_is_stored(shared_client, box, words):
    made = project(shared_client)
    at = run_form(made.id)
    labelled(at.text_area, BOX).set_value(box)
    labelled(at.text_input, "数据集 *").set_value("语料")
    at.run()
    assert any(all(word in text for word in words) for text in errors(at)), errors(at)
    at.button(key="start_run_submit").click().run()
    assert any("未发起运行" in text for text in errors(at)), errors(at)
    assert shared_client.list_runs(made.id) == []


def test_out_of_range_numbers_get_a_chinese_message_and_never_a_silent_no(shared_client):
    made = project(shared_client)
    at = run_form(made.id)
    gpus = labelled(at.number_input, "GPU 数量")
    assert gpus.proto.max > 10**6, "no browser-side bound, whose tooltip is English and blocks silently"
    gpus.set_value(5000)
    labelled(at.number_input, "优先级").set_value(500)
    labelled(at.text_input, "数据集 *").set_value("语料")
    labelled(at.text_area, BOX).set_value('{"lr": 0.1}')
    at.button(key="start_run_submit").click().run()
    assert "GPU 数量必须在 0 到 4096 之间，当前为 5000" in errors(at)
    assert "优先级必须在 -100 到 100 之间，当前为 500" in errors(at)
    assert any("是否想写 learning_rate？" in text for text in errors(at)), "the API still checks the other fields"
    assert any("未发起运行" in text for text in errors(at))
    assert shared_client.list_runs(made.id) == []


def test_the_trainer_is_its_own_field_and_switching_it_updates_the_configuration(shared_client):
    made = project(shared_client)
    at = run_form(made.id)
    trainer = labelled(at.selectbox, "训练器")
    if "tiny-lm" not in trainer.options[-1] and not any(o.startswith("tiny-lm") for o in trainer.options):
        pytest.skip("tiny-lm 需要 ltm[torch]")
    trainer.select_index(next(i for i, o in enumerate(trainer.options) if o.startswith("tiny-lm"))).run()
    assert "d_model" in effective(at)
    assert any("训练器 tiny-lm" in str(c.value) for c in at.caption)


def test_in_a_browser_streamlit_english_is_hidden_or_chinese(shared_api, shared_client, tmp_path):
    """The console as `ltm up` starts it (toolbar mode viewer on the command line): no English menu, no Ctrl+Enter
    hints, and a multiselect's bulk action reads 全选."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS, settled

    made = project(shared_client, learning_rate=3e-5)
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", APP, "--server.address", "127.0.0.1", "--server.port"]
    command += [str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    command += ["--client.toolbarMode", "viewer"]
    with open(tmp_path / "console.log", "wb") as log:
        console = subprocess.Popen(command, env={**os.environ, "LTM_API_URL": shared_api.url}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/_stcore/health"), timeout=60, message="the console to answer")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
            page.set_default_timeout(30_000)
            page.goto(f"{url}/project?project_id={made.id}")
            settled(page)
            page.reload()  # the process's first script run answers before app.py sets the toolbar mode
            settled(page)
            sync_api.expect(page.locator('[data-testid="stMainMenu"]')).to_have_count(0)
            page.get_by_role("tab", name="发起运行").click()
            box = page.get_by_role("textbox", name=BOX)
            box.fill('{"lr": 0.1}')
            sync_api.expect(page.locator('[data-testid="InputInstructions"]').first).to_be_hidden()
            box.press("Tab")
            sync_api.expect(page.get_by_text("是否想写 learning_rate？", exact=False)).to_be_visible()
            page.get_by_role("tab", name="运行", exact=True).click()
            page.locator('[data-testid="stMultiSelect"] input').first.click()
            bulk = page.locator('[data-key="__select_all__"] [data-item-hl]')
            sync_api.expect(bulk).to_be_visible()
            assert bulk.evaluate("e => getComputedStyle(e).fontSize") == "0px"
            assert bulk.evaluate("e => getComputedStyle(e, '::after').content") == '"全选"'
            browser.close()
    finally:
        console.terminate()
        console.wait(timeout=30)
