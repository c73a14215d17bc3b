"""Sweeps as the API keeps them: checked and stored at creation, their controller started (and started again after
it died), trials created once each however often the controller asks, promotions resumed from checkpoints, and a
cancel that stops every active trial with its checkpoint. Optuna itself runs only in the controller flow."""

import json
import logging
import math
import threading
from collections import defaultdict
from contextlib import contextmanager

from ltm.api import trainer_catalog
from ltm.api.errors import Refusal, conflict, not_found, unprocessable
from ltm.api.ids import well_formed
from ltm.api.run_service import RunService, run_config
from ltm.ids import new_id
from ltm.launchers import LauncherUnavailable
from ltm.models import SweepCreate, TrialUpdate
from ltm.store import artifacts as artifact_store
from ltm.store import sweeps as sweep_store
from ltm.store import utc_now
from ltm.trainers import SCRIPT
from ltm.vocabulary import Direction, Pruner, RunStatus, Sampler, SweepStatus, TrialState, field_label

log = logging.getLogger("ltm.api")
SPACE_SOURCE = "调参参数"
_TRIAL_NAME_ROOM = 40
MAX_GRID_VALUES = 1000


def rungs(pruner: Pruner, num_epochs: int, steps_per_epoch: int, min_epochs: int, factor: int) -> list[int]:
    """The steps at which a trial stops for a decision: min_epochs × factorᵏ epochs below num_epochs, then the
    end. Without a pruner a trial trains to the end in one run."""
    if pruner == Pruner.NONE:
        return [num_epochs * steps_per_epoch]
    epochs, boundaries = min_epochs, []
    while epochs < num_epochs:
        boundaries.append(epochs)
        epochs *= factor
    return [e * steps_per_epoch for e in [*boundaries, num_epochs]]


@contextmanager
def _within(prefix: str, label: str):
    """A 422 about a create-run body, re-addressed to where that body sits in the sweep request."""
    try:
        yield
    except Refusal as exc:
        if exc.status_code != 422:
            raise
        errors = [
            {**error, "field": f"{prefix}.{error['field']}", "label": field_label(f"{prefix}.{error['field']}")}
            for error in exc.errors or []
        ]
        raise Refusal(422, f"{label}：{exc.detail}", errors or None) from None


def _space_layer(values: dict) -> trainer_catalog.Layer:
    return trainer_catalog.Layer(SPACE_SOURCE, "调参搜索空间", "space", values)


def _probe_values(dimension: dict) -> list[tuple[str, object]]:
    if dimension["type"] == "choice":
        return [(f"values.{i}", value) for i, value in enumerate(dimension["values"])]
    cast = int if dimension["type"] == "int" else float
    return [("low", cast(dimension["low"])), ("high", cast(dimension["high"]))]


class SweepService:
    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        self.db = runs.db
        self.settings = runs.settings
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)  # one trial decision at a time per sweep

    # ---- creating and reading

    def create(self, project: dict, body: SweepCreate, created_by: str) -> dict:
        _check_grid(body)
        config = self._template_config(project, body)
        preview = self._checked_space(project, body, config)
        spec = body.model_dump(mode="json")
        now = utc_now()
        sweep = {
            "id": new_id("sweep"),
            "project_id": project["id"],
            "name": body.name,
            "spec": spec,
            "rungs": self._rungs(body, preview),
            "total_steps": preview["total_steps"],
            "status": SweepStatus.RUNNING.value,
            "message": None,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
            "flow_run_id": None,
            "controller_starts": 0,
        }
        sweep_store.insert(self.db, sweep)
        try:
            self._start_controller(sweep)
        except LauncherUnavailable as exc:
            sweep_store.delete(self.db, sweep["id"])
            raise Refusal(503, f"编排服务不可用，调参未创建：{exc}") from exc
        return self.get(project["id"], sweep["id"])

    def _template_config(self, project: dict, body: SweepCreate) -> dict:
        with _within("template", "运行模板"):
            config = run_config(project, body.template)
            self.runs.plan(project, config)
        return config

    def _checked_space(self, project: dict, body: SweepCreate, config: dict) -> dict:
        """Every bound and choice of the space checked against the trainer's declarations, as a run would be;
        returns the template's preview with the space's low bounds."""
        layers = config["layers"]
        for name, dimension in body.space.items():
            for where, value in _probe_values(dimension.model_dump()):
                try:
                    self.runs.plan(project, {**config, "layers": [*layers, _space_layer({name: value})]})
                except Refusal as exc:
                    if exc.status_code != 422:
                        raise
                    field = f"space.{name}.{where}"
                    raise unprocessable(f"{field_label(field)}（{value!r}）：{exc.detail}", field) from None
        lows = {name: value for name, d in body.space.items() for _, value in _probe_values(d.model_dump())[:1]}
        return self.runs.plan(project, {**config, "layers": [*layers, _space_layer(lows)]})

    def _rungs(self, body: SweepCreate, preview: dict) -> list[int]:
        values = {entry["name"]: entry["value"] for entry in preview["effective_hyperparameters"]}
        if body.pruner == Pruner.NONE:
            return [preview["total_steps"]] if preview["total_steps"] else []
        if preview["trainer"] == SCRIPT or preview["total_steps"] is None:
            raise unprocessable(
                f"剪枝器 {body.pruner.value} 需要在轮次边界暂停试验并从检查点续训，只支持声明了 num_epochs 与 "
                "steps_per_epoch 的训练器；脚本运行的调参请用 pruner: none",
                "pruner",
            )
        varying = [name for name in ("num_epochs", "steps_per_epoch") if name in body.space]
        if varying:
            raise unprocessable(
                f"剪枝时每个试验的总步数必须相同：搜索空间不能包含 {'、'.join(varying)}（剪枝器 {body.pruner.value}）",
                f"space.{varying[0]}",
            )
        found = rungs(
            body.pruner, values["num_epochs"], values["steps_per_epoch"], body.min_epochs, body.reduction_factor
        )
        if len(found) < 2:
            raise unprocessable(
                f"训练轮数 num_epochs={values['num_epochs']} 不超过 min_epochs={body.min_epochs}，剪枝器无处可停："
                "请调高运行模板的 num_epochs、调低 min_epochs，或用 pruner: none",
                "min_epochs",
            )
        return found

    def get(self, project_id: str, sweep_id: str) -> dict:
        sweep = sweep_store.get(self.db, sweep_id) if well_formed(sweep_id, "sweep") else None
        if sweep is None or sweep["project_id"] != project_id:
            raise not_found("调参", sweep_id)
        return sweep

    def summaries(self, project_id: str) -> list[dict]:
        return [self._summary(sweep) for sweep in sweep_store.list_for_project(self.db, project_id)]

    def _summary(self, sweep: dict, trials: list[dict] | None = None) -> dict:
        spec = sweep["spec"]
        trials = sweep_store.trials(self.db, sweep["id"]) if trials is None else trials
        completed = [
            t["objective"] for t in trials if t["state"] == TrialState.COMPLETED and t["objective"] is not None
        ]
        best = None
        if completed:
            best = max(completed) if spec["objective"]["direction"] == Direction.MAXIMIZE else min(completed)
        return {
            **{key: spec[key] for key in ("objective", "sampler", "pruner", "max_trials", "parallelism")},
            **sweep,
            "trial_count": len(trials),
            "best_objective": best,
        }

    def shown(self, sweep: dict) -> dict:
        """The sweep as answered: its spec, its trials best first with their runs and steps, and the best trial."""
        spec = sweep["spec"]
        trials = sweep_store.trials(self.db, sweep["id"])
        runs_of = defaultdict(list)
        for run in sweep_store.runs(self.db, sweep["id"]):
            runs_of[run["trial_number"]].append(run)
        shown_trials = [self._trial(trial, runs_of[trial["number"]]) for trial in trials]
        maximize = spec["objective"]["direction"] == Direction.MAXIMIZE
        shown_trials.sort(key=lambda t: _rank_key(t, maximize))
        best = next(
            (t for t in shown_trials if t["state"] == TrialState.COMPLETED and t["objective"] is not None), None
        )
        return {
            **self._summary(sweep, trials),
            **{key: spec[key] for key in ("template", "space", "reduction_factor", "min_epochs", "seed")},
            "trials": shown_trials,
            "best": self._best(best) if best else None,
            "steps_trained": sum(t["steps_trained"] for t in shown_trials),
            "steps_saved": sum(t["steps_saved"] for t in shown_trials),
            "steps_if_complete": len(trials) * sweep["total_steps"] if sweep["total_steps"] else None,
        }

    @staticmethod
    def _trial(trial: dict, runs: list[dict]) -> dict:
        latest = runs[-1] if runs else None
        return {
            **trial,
            "run_id": latest["id"] if latest else None,
            "run_status": latest["status"] if latest else None,
            "run_ids": [run["id"] for run in runs],
            "rung": latest["rung"] if latest else 0,
            "step": latest["current_step"] if latest else 0,
            "steps_trained": sum(max(0, run["current_step"] - run["start_step"]) for run in runs),
            "steps_saved": sum(run["start_step"] for run in runs if run["rung"]),
        }

    def _best(self, trial: dict) -> dict:
        checkpoints = [a for a in artifact_store.list_for_run(self.db, trial["run_id"]) if a["type"] == "checkpoint"]
        newest = max(checkpoints, key=lambda a: (a["step"] or 0, a["created_at"]), default=None)
        return {**trial, "checkpoint_id": newest["id"] if newest else None}

    # ---- what the controller asks for

    def journal(self, sweep: dict, start: int) -> dict:
        entries = sweep_store.journal(self.db, sweep["id"], start)
        return {"entries": entries, "next": start + len(entries)}

    def append_journal(self, sweep: dict, entries: list[dict]) -> dict:
        self._refuse_ended(sweep, "写入调参日志")
        return {"next": sweep_store.append_journal(self.db, sweep["id"], entries)}

    def create_trial(self, project: dict, sweep: dict, number: int, params: dict) -> dict:
        """The first run of trial `number`; the same run when it already exists (a controller that restarted
        asks again)."""
        with self._locks[sweep["id"]]:
            existing = sweep_store.trial_run(self.db, sweep["id"], number, 0)
            if existing is None:
                sweep = self.get(project["id"], sweep["id"])
                self._refuse_ended(sweep, "开始新试验")
                self._refuse_params_outside_space(sweep, params)
                if len(sweep_store.trials(self.db, sweep["id"])) >= sweep["spec"]["max_trials"]:
                    raise conflict(
                        f"调参 {sweep['id']} 已开始 {sweep['spec']['max_trials']} 个试验（max_trials），不能再开始"
                    )
                existing = self._first_run(project, sweep, number, params)
            if sweep_store.trial(self.db, sweep["id"], number) is None:
                now = utc_now()
                sweep_store.insert_trial(
                    self.db,
                    {
                        "sweep_id": sweep["id"],
                        "number": number,
                        "params": params,
                        "state": TrialState.RUNNING.value,
                        "objective": None,
                        "pruned_reason": None,
                        "message": None,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
        return self.runs.with_artifacts(existing)

    def _refuse_params_outside_space(self, sweep: dict, params: dict) -> None:
        """A trial's params name every dimension of the space, each within it."""
        space = sweep["spec"]["space"]
        for name in sorted(set(params) | set(space)):
            problem = _outside(space.get(name), params.get(name)) if name in params else "缺少这个参数"
            if problem:
                raise unprocessable(f"参数 {name}：{problem}（调参 {sweep['id']} 的搜索空间）", f"params.{name}")

    def _first_run(self, project: dict, sweep: dict, number: int, params: dict) -> dict:
        template = SweepCreate.model_validate(sweep["spec"]).template
        config = run_config(project, template)
        config["layers"] = [*config["layers"], _space_layer(params)]
        config["name"] = _trial_name(sweep, number, 0)
        rungs_ = sweep["rungs"]
        config["sweep"] = {
            "sweep_id": sweep["id"],
            "trial_number": number,
            "rung": 0,
            "stop_at_step": rungs_[0] if len(rungs_) > 1 else None,
        }
        return self.runs.create(project, config, sweep["created_by"] or "调参")

    def promote(self, project: dict, sweep: dict, number: int, rung: int) -> dict:
        """Trial `number`'s run for `rung`: resumed from the checkpoint its previous rung's run stopped at."""
        with self._locks[sweep["id"]]:
            existing = sweep_store.trial_run(self.db, sweep["id"], number, rung)
            if existing is None:
                sweep = self.get(project["id"], sweep["id"])
                self._refuse_ended(sweep, "晋升试验")
                existing = self._next_run(project, sweep, number, rung)
        return self.runs.with_artifacts(existing)

    def _next_run(self, project: dict, sweep: dict, number: int, rung: int) -> dict:
        rungs_ = sweep["rungs"]
        if rung >= len(rungs_):
            raise unprocessable(
                f"调参 {sweep['id']} 只有 {len(rungs_)} 层（0–{len(rungs_) - 1}），没有第 {rung} 层", "rung"
            )
        trial = sweep_store.trial(self.db, sweep["id"], number)
        if trial is None:
            raise not_found(f"调参 {sweep['id']} 的试验", str(number))
        if trial["state"] != TrialState.RUNNING:
            raise conflict(f"试验 {number} 已结束（{trial['state']}），不能晋升")
        previous = sweep_store.trial_run(self.db, sweep["id"], number, rung - 1)
        if previous is None or previous["status"] != RunStatus.COMPLETED.value:
            raise conflict(f"试验 {number} 第 {rung - 1} 层的运行还没有完成，不能晋升到第 {rung} 层")
        checkpoint = _checkpoint_at(artifact_store.list_for_run(self.db, previous["id"]), previous["current_step"])
        if checkpoint is None:
            raise conflict(
                f"试验 {number} 第 {rung - 1} 层的运行 {previous['id']} 没有第 {previous['current_step']} 步的检查点"
            )
        placement = {
            "sweep_id": sweep["id"],
            "trial_number": number,
            "rung": rung,
            "stop_at_step": rungs_[rung] if rung < len(rungs_) - 1 else None,
        }
        overrides = {"name": _trial_name(sweep, number, rung)}
        return self.runs.resume(
            project, previous, checkpoint["id"], overrides, sweep["created_by"] or "调参", placement
        )

    def update_trial(self, sweep: dict, number: int, body: TrialUpdate) -> dict:
        with self._locks[sweep["id"]]:
            trial = sweep_store.trial(self.db, sweep["id"], number)
            if trial is None:
                raise not_found(f"调参 {sweep['id']} 的试验", str(number))
            if trial["state"] != TrialState.RUNNING:
                if trial["state"] == body.state:
                    return trial
                raise conflict(f"试验 {number} 已结束（{trial['state']}），不能改为 {body.state}")
            values = {"state": body.state.value, "objective": body.objective, "updated_at": utc_now()}
            if body.state == TrialState.PRUNED:
                values["pruned_reason"] = body.reason
            else:
                values["message"] = body.reason
            sweep_store.update_trial(self.db, sweep["id"], number, values)
            runs = sweep_store.runs(self.db, sweep["id"])
            latest = [run for run in runs if run["trial_number"] == number]
            if body.state == TrialState.PRUNED and body.reason and latest:
                self.runs.update(latest[-1]["id"], {"message": body.reason})
        return sweep_store.trial(self.db, sweep["id"], number)

    def update(self, sweep: dict, values: dict) -> dict:
        """What the controller reports: the sweep's end, or a note."""
        status = values.get("status")
        current = SweepStatus(sweep["status"])
        if status is not None and status != current:
            if current.is_terminal:
                raise conflict(f"调参 {sweep['id']} 已结束（{current}），不能改为 {status}")
            values["finished_at"] = utc_now() if SweepStatus(status).is_terminal else None
        if values.get("status") == current:
            del values["status"]
        if values:
            sweep_store.update(self.db, sweep["id"], {**values, "updated_at": utc_now()})
        return self.get(sweep["project_id"], sweep["id"])

    # ---- stopping and restarting

    def cancel(self, sweep: dict) -> dict:
        """Mark the sweep 已取消, then cancel its active trials' runs: each saves a checkpoint as it stops."""
        current = SweepStatus(sweep["status"])
        if current.is_terminal:
            raise conflict(f"调参 {sweep['id']} 已结束（{current}），无法取消")
        now = utc_now()
        sweep_store.update(
            self.db,
            sweep["id"],
            {"status": SweepStatus.CANCELLED.value, "finished_at": now, "updated_at": now, "message": "用户取消了调参"},
        )
        with self._locks[sweep["id"]]:
            for trial in sweep_store.trials(self.db, sweep["id"]):
                if trial["state"] == TrialState.RUNNING:
                    sweep_store.update_trial(
                        self.db,
                        sweep["id"],
                        trial["number"],
                        {"state": TrialState.CANCELLED.value, "message": "调参已取消", "updated_at": now},
                    )
        unstopped = []
        for run in sweep_store.runs(self.db, sweep["id"]):
            if RunStatus(run["status"]).is_active:
                try:
                    self.runs.request_cancel(run)
                except Refusal as exc:
                    unstopped.append(f"{run['id']}（{exc.detail}）")
        if unstopped:
            message = f"用户取消了调参；这些运行未能取消，请稍后单独取消：{'、'.join(unstopped)}"
            sweep_store.update(self.db, sweep["id"], {"message": message, "updated_at": utc_now()})
        return self.get(sweep["project_id"], sweep["id"])

    def _start_controller(self, sweep: dict) -> None:
        flow_run_id = self.runs.launcher.submit_sweep(sweep)
        starts = sweep["controller_starts"] + 1
        sweep_store.update(self.db, sweep["id"], {"flow_run_id": flow_run_id, "controller_starts": starts})
        sweep.update(flow_run_id=flow_run_id, controller_starts=starts)

    def restart_dead_controllers(self) -> None:
        """A running sweep whose controller ended without ending the sweep gets a new controller, which continues
        the study from its journal; after `sweep_controller_starts` starts the sweep fails instead."""
        for sweep in sweep_store.list_by_status(self.db, SweepStatus.RUNNING.value):
            if not sweep["flow_run_id"]:
                continue
            ended = self.runs.launcher.sweep_ended(sweep)
            if ended is None or SweepStatus(sweep_store.get(self.db, sweep["id"])["status"]).is_terminal:
                continue
            if sweep["controller_starts"] >= self.settings.sweep_controller_starts:
                message = f"调参控制器已启动 {sweep['controller_starts']} 次仍意外结束：{ended}"
                self.update(sweep, {"status": SweepStatus.FAILED.value, "message": message})
                continue
            log.warning("调参 %s 的控制器已结束（%s），重新启动", sweep["id"], ended)
            self._start_controller(sweep)
            message = f"{ended}；已第 {sweep['controller_starts']} 次启动控制器，从调参日志继续"
            sweep_store.update(self.db, sweep["id"], {"message": message, "updated_at": utc_now()})

    @staticmethod
    def _refuse_ended(sweep: dict, doing: str) -> None:
        status = SweepStatus(sweep["status"])
        if status.is_terminal:
            raise conflict(f"调参 {sweep['id']} 已结束（{status}），不能{doing}")


def _outside(dimension: dict | None, value) -> str | None:
    """Why `value` is not a value of `dimension`, or None when it is."""
    if dimension is None:
        return "不在搜索空间中"
    if dimension["type"] == "choice":
        shown = json.dumps(value, ensure_ascii=False)
        choices = [json.dumps(choice, ensure_ascii=False) for choice in dimension["values"]]
        return None if shown in choices else f"{shown} 不是候选值（{'、'.join(choices)}）之一"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} 不是数值"
    if dimension["type"] == "int" and value != int(value):
        return f"{value!r} 不是整数"
    if not dimension["low"] <= value <= dimension["high"]:
        return f"{value!r} 不在 {dimension['low']:g}–{dimension['high']:g} 之内"
    return None


def _check_grid(body: SweepCreate) -> None:
    """The grid sampler walks every combination: only choices and int ranges of at most MAX_GRID_VALUES values."""
    if body.sampler != Sampler.GRID:
        return
    for name, dimension in body.space.items():
        if dimension.type == "float":
            raise unprocessable(
                f"网格采样（sampler: grid）只能搜索 choice 与 int：{name} 是 float，请改为 choice 列出要试的取值",
                f"space.{name}.type",
            )
        count = int(dimension.high - dimension.low + 1) if dimension.type == "int" else 0
        if count > MAX_GRID_VALUES:
            raise unprocessable(
                f"网格采样时 int 范围最多 {MAX_GRID_VALUES} 个取值：{name} 有 {count} 个",
                f"space.{name}.high",
            )


def _trial_name(sweep: dict, number: int, rung: int) -> str:
    suffix = f"-t{number:03d}" + (f"-r{rung}" if rung else "")
    return sweep["name"][:_TRIAL_NAME_ROOM] + suffix


def _checkpoint_at(artifacts: list[dict], step: int) -> dict | None:
    at_step = [a for a in artifacts if a["type"] == "checkpoint" and a["step"] == step]
    return max(at_step, key=lambda a: a["created_at"], default=None)


def _rank_key(trial: dict, maximize: bool) -> tuple:
    """Completed trials by objective, then the others furthest first, each by objective; no objective last."""
    objective = trial["objective"]
    value = math.inf if objective is None else (-objective if maximize else objective)
    return (trial["state"] != TrialState.COMPLETED, objective is None, -trial["rung"], value, trial["number"])
