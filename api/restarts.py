"""Automatic restarts: a run that ends 失败 is retried from its newest checkpoint while its chain has restarts left
(the run's max_restarts, else its project's), unless a log rule says a retry cannot help.

A status-move listener (RunService.listeners). What it decides is decided in the move's own request: the failed
run's labels, and its message when it will not be retried. Creating the restart (checking the checkpoint's files,
handing the run to the orchestrator) happens on a worker thread, so the flow's final report does not wait for it.
"""

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ltm.api import trainer_catalog
from ltm.api.errors import Refusal
from ltm.limits import MAX_NAME_LENGTH, MAX_TEXT_LENGTH
from ltm.models import RunStatus
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import logs as log_store
from ltm.store import projects as project_store
from ltm.store import restarts as restart_store
from ltm.store import runs as run_store

log = logging.getLogger("ltm.api")
ACTOR = "ltm 自动重试"
RETRY, LABEL = "不重试", "标注"
DEFAULT_RULES = (
    {"pattern": r"CUDA out of memory|torch\.(cuda\.)?OutOfMemoryError", "action": RETRY, "label": "显存不足"},
)
TAIL_LINES = 200  # the newest lines of a failed run's log that rules read, besides its ERROR lines
ERROR_LINES = 1000
LINE_CHARS = 4000  # of each line: a rule's expression never runs over more
MAX_CHAIN = 50
_RETRY_SUFFIX = re.compile(r"-重试\d+$")


@dataclass(frozen=True)
class Verdict:
    labels: list[str]
    stop: dict | None  # the first 不重试 rule that matched


def matched_rules(lines: list[str], rules: list[dict]) -> Verdict:
    """Which of the project's rules, then the shipped ones, match any of `lines`."""
    labels, stop = [], None
    for rule in [*rules, *DEFAULT_RULES]:
        expression = re.compile(rule["pattern"])
        if not any(expression.search(line[:LINE_CHARS]) for line in lines):
            continue
        if rule["label"] not in labels:
            labels.append(rule["label"])
        if rule["action"] == RETRY and stop is None:
            stop = rule
    return Verdict(labels, stop)


def restart_name(name: str, number: int) -> str:
    suffix = f"-重试{number}"
    return _RETRY_SUFFIX.sub("", name)[: MAX_NAME_LENGTH - len(suffix)] + suffix


def appended(message: str | None, addition: str) -> str:
    """`addition` after the run's message, which is shortened (its end kept) when both would not fit."""
    if not message:
        return addition
    room = MAX_TEXT_LENGTH - len(addition) - 1
    if len(message) > room:
        message = message[: room - 1] + "…"
    return f"{message}；{addition}"


class Restarter:
    def __init__(self, runs) -> None:
        self.runs = runs
        self.db = runs.db
        self._creating = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restart")

    def on_moved(self, run: dict | None, previous: RunStatus | None) -> None:
        if run is None or not RunStatus(run["status"]).is_terminal:
            return
        if run["status"] != RunStatus.FAILED.value:
            self._keep_restart_note(run)
            return
        project = project_store.get_row(self.db, run["project_id"])
        verdict = matched_rules(self._log_lines(run), project["log_rules"] if project else [])
        new_labels = [label for label in verdict.labels if label not in (run["labels"] or [])]
        if new_labels:
            self.runs.update(run["id"], {"labels": [*(run["labels"] or []), *new_labels]})
        allowed, used = self.allowed(run, project), run["restarts"] or 0
        why_not = self._why_not(run, project, previous, verdict, allowed, used)
        if why_not:
            self.runs.update(run["id"], {"message": appended(run["message"], why_not)})
        elif why_not is None:
            self._creating.submit(self._restart, run["id"], project["id"], used + 1, allowed)

    def allowed(self, run: dict, project: dict | None) -> int:
        """Restarts of the chain: the first max_restarts set on the run or the runs it restarts, else the project's."""
        seen = 0
        while run is not None and seen < MAX_CHAIN:
            if run["max_restarts"] is not None:
                return run["max_restarts"]
            run = run_store.get(self.db, run["restart_of"]) if run["restart_of"] else None
            seen += 1
        return (project or {}).get("max_restarts") or 0

    def _why_not(
        self, run: dict, project: dict | None, previous: RunStatus | None, verdict: Verdict, allowed: int, used: int
    ) -> str | None:
        """None to restart; else why not, in words for the run's message ("" when nothing needs saying)."""
        if project is None or allowed == 0 or previous == RunStatus.CANCELLING or run["preempted_at"]:
            return ""  # nothing to retry, or a cancel / preemption that ended badly: stopping was wanted
        if run["sweep_id"]:
            return ""  # the sweep's controller decides about its trials
        if restart_store.restart_of(self.db, run["id"]):
            return ""
        if used >= allowed:
            return f"已自动重试 {used} 次（共 {allowed} 次），不再重试"
        if project["archived"]:
            return "项目已归档，不自动重试"
        if verdict.stop:
            return f"不自动重试：日志匹配规则「{verdict.stop['pattern']}」（{verdict.stop['label']}）"
        if run["started_at"] is None:
            return "运行没有开始训练就失败了，重试也会同样失败，不自动重试"
        return None

    def _log_lines(self, run: dict) -> list[str]:
        _, errors = log_store.page(self.db, run["id"], 0, ERROR_LINES, min_level="ERROR", newest_first=True)
        _, tail = log_store.page(self.db, run["id"], 0, TAIL_LINES, newest_first=True)
        return [run["message"] or "", *(line["message"] for line in errors), *(line["message"] for line in tail)]

    def _restart(self, run_id: str, project_id: str, number: int, allowed: int) -> None:
        run = run_store.get(self.db, run_id)
        project = project_store.get_row(self.db, project_id)
        if run is None or project is None or restart_store.restart_of(self.db, run_id):
            return
        try:
            again = self._create(run, project, number)
        except Refusal as exc:
            self.runs.update(run_id, {"message": appended(run["message"], f"自动重试失败：{exc.detail}")})
            return
        except Exception as exc:
            log.exception("运行 %s 的自动重试失败", run_id)
            self.runs.update(run_id, {"message": appended(run["message"], f"自动重试失败：{exc}")})
            return
        counted = f"第 {number} 次，共 {allowed} 次"
        self.runs.update(again["id"], {"message": restart_note(run, again), "max_restarts": run["max_restarts"]})
        self.runs.update(run_id, {"message": appended(run["message"], f"已自动重试为 {again['id']}（{counted}）")})
        details = f"失败的运行 {run['id']} 的第 {number} 次自动重试（共 {allowed} 次），{started_from(run, again)}"
        auth_store.record(
            self.db, ACTOR, "自动重试运行", project_id, again["id"], target=again["name"], details=details
        )

    def _create(self, run: dict, project: dict, number: int) -> dict:
        """The restart of `run` and where it starts: the run's newest checkpoint; without one, the checkpoint the
        run itself resumed from; else from scratch with the same configuration."""
        restart = {"restart_of": run["id"], "restarts": number}
        name = restart_name(run["name"], number)
        checkpoints = [a for a in artifact_store.list_for_run(self.db, run["id"]) if a["type"] == "checkpoint"]
        newest = max(checkpoints, key=lambda a: (a["step"] or 0, a["created_at"]), default=None)
        parent = run_store.get(self.db, run["parent_run_id"]) if run["resumed_from"] and run["parent_run_id"] else None
        if newest is not None:
            source, artifact, overrides = run, newest["id"], {"name": name}
        elif parent is not None:
            source, artifact, overrides = parent, run["resumed_from"], {"name": name, **same_settings(run)}
        else:
            config = {
                **same_settings(run),
                "name": name,
                "layers": [trainer_catalog.source_run_values(run["hyperparameters"])],
                "restart": restart,
                "max_restarts": run["max_restarts"],
            }
            return self.runs.create(project, config, run["created_by"])
        return self.runs.resume(project, source, artifact, overrides, run["created_by"], restart=restart)

    def _keep_restart_note(self, run: dict) -> None:
        """A restart that ends without a message of its own (it completed) keeps saying what it restarts."""
        if run["message"] or not run["restart_of"]:
            return
        origin = run_store.get(self.db, run["restart_of"])
        if origin is not None and origin["status"] == RunStatus.FAILED.value:
            self.runs.update(run["id"], {"message": restart_note(origin, run)})


def restart_note(origin: dict, again: dict) -> str:
    """What the restart `again` of the failed run `origin` says about itself."""
    retried = f"运行 {origin['name']}（{origin['id']}）失败后的第 {again['restarts']} 次重试"
    return f"自动重试：{retried}，{started_from(origin, again)}"


def started_from(origin: dict, again: dict) -> str:
    if again["resumed_from"] and again["parent_run_id"] == origin["id"]:
        return f"从第 {again['start_step']} 步的检查点 {again['resumed_from']} 恢复"
    if again["resumed_from"]:
        return f"原运行没有保存检查点，从它开始时的检查点 {again['resumed_from']}（第 {again['start_step']} 步）恢复"
    return "原运行没有保存检查点，从头开始"


def same_settings(run: dict) -> dict:
    keys = ("model", "dataset", "trainer", "resources", "priority", "entrypoint", "source", "processes")
    return {**{key: run[key] for key in keys}, "hyperparameters": run["hyperparameters"]}
