"""`sweep_controller`: one sweep is one Prefect flow run that drives an Optuna study over ordinary ltm runs.

Every decision goes through the API: the study lives in the sweep's journal, a trial's runs are created by
`start_trial` and `promote_trial` (which answer the existing run when asked again), and each outcome is recorded
with `end_trial`. A controller killed anywhere can therefore be started again and carries on: it replays the
journal, finds each trial's runs, and neither loses nor repeats a trial.

A trial with a pruner trains rung by rung: its run stops at the rung's step with a checkpoint (`stop_at_step`);
the controller reports the objective there to Optuna; a pruned trial stays stopped, keeping that checkpoint, and
its run says why; a promoted one continues in a new run resumed from that checkpoint."""

import math
import time

import optuna
from optuna.trial import TrialState as OptunaState
from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled

from ltm.client import ApiError, Client
from ltm.flows import sweep_study
from ltm.models import Run, RunStatus, SweepStatus, SweepTrial, TrialState
from ltm.settings import Settings
from ltm.vocabulary import Direction, Pruner, Sampler

PRUNER_NAMES = {Pruner.MEDIAN: "中位数剪枝", Pruner.ASHA: "ASHA", Pruner.HYPERBAND: "Hyperband"}
_FINISHED = (OptunaState.COMPLETE, OptunaState.PRUNED, OptunaState.FAIL)


class SweepDriver:
    def __init__(self, client: Client, project_id: str, sweep_id: str, logger) -> None:
        self.client = client
        self.project_id = project_id
        self.sweep_id = sweep_id
        self.logger = logger
        self.sweep = client.get_sweep(project_id, sweep_id)
        self.study = sweep_study.open_study(client, self.sweep)
        self.space = sweep_study.distributions(self.sweep)

    def drive(self, poll_seconds: float) -> SweepStatus:
        """Look after the trials until the sweep ends; returns how it ended."""
        while True:
            self.sweep = self.client.get_sweep(self.project_id, self.sweep_id)
            if self.sweep.status != SweepStatus.RUNNING:
                return self.sweep.status
            if self.step():
                return self._finish()
            time.sleep(poll_seconds)

    def step(self) -> bool:
        """One look at every trial: record the runs that ended, start new trials; whether nothing is left to do."""
        known = {trial.number: trial for trial in self.sweep.trials}
        studied = {trial.number: trial for trial in self.study.get_trials(deepcopy=False)}
        for number, frozen in studied.items():
            if number not in known and frozen.state == OptunaState.RUNNING:
                self._adopt(frozen)  # asked for before a controller died, never started
        for trial in self.sweep.trials:
            if trial.state == TrialState.RUNNING:
                self._look_after(trial, studied.get(trial.number))
        self.sweep = self.client.get_sweep(self.project_id, self.sweep_id)
        active = sum(trial.state == TrialState.RUNNING for trial in self.sweep.trials)
        started = len(self.sweep.trials)
        while active < self.sweep.parallelism and started < self.sweep.max_trials and not self._exhausted():
            trial = self.study.ask(self.space)
            self._start(trial.number, trial.params)
            active, started = active + 1, started + 1
        return active == 0 and (started >= self.sweep.max_trials or self._exhausted())

    def _exhausted(self) -> bool:
        sampler = self.study.sampler
        return self.sweep.sampler == Sampler.GRID and sampler.is_exhausted(self.study)

    def _adopt(self, frozen: optuna.trial.FrozenTrial) -> None:
        if set(frozen.params) != set(self.space):
            self.study.tell(frozen.number, state=OptunaState.FAIL, skip_if_finished=True)  # died while sampling
            return
        self._start(frozen.number, frozen.params)

    def _start(self, number: int, params: dict) -> None:
        run = self.client.start_trial(self.project_id, self.sweep_id, number, params)
        shown = "，".join(
            f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
        )
        self.logger.info("试验 %s 开始：%s（运行 %s）", number, shown, run.id)

    def _look_after(self, trial: SweepTrial, frozen: optuna.trial.FrozenTrial | None) -> None:
        if trial.run_id is None:
            self._end(trial, TrialState.FAILED, reason="试验的运行已被删除")
            return
        if trial.run_status is not None and RunStatus(trial.run_status).is_active:
            return
        run = self.client.get_run(self.project_id, trial.run_id)
        if frozen is not None and frozen.state in _FINISHED:
            self._record_told(trial, frozen, run)
        elif run.status == RunStatus.COMPLETED:
            self._decide(trial, run)
        else:
            state = TrialState.CANCELLED if run.status == RunStatus.CANCELLED else TrialState.FAILED
            self.study.tell(trial.number, state=OptunaState.FAIL, skip_if_finished=True)
            self._end(trial, state, reason=run.message or f"试验的运行 {run.id} {run.status.value}")

    def _decide(self, trial: SweepTrial, run: Run) -> None:
        metric = self.sweep.objective.metric
        value = run.metrics.get(metric)
        if value is None or not math.isfinite(value):
            self.study.tell(trial.number, state=OptunaState.FAIL, skip_if_finished=True)
            found = "没有报告" if value is None else f"报告了非有限值 {value}"
            self._end(trial, TrialState.FAILED, reason=f"运行 {run.id} {found}目标指标 {metric}")
            return
        if run.stop_at_step is None:
            self.study.tell(trial.number, value, skip_if_finished=True)
            self._end(trial, TrialState.COMPLETED, objective=value)
            return
        optuna_trial = optuna.trial.Trial(self.study, self._trial_id(trial.number))
        optuna_trial.report(value, run.current_step)
        if optuna_trial.should_prune():
            self.study.tell(trial.number, state=OptunaState.PRUNED, skip_if_finished=True)
            self._end(trial, TrialState.PRUNED, objective=value, reason=self._pruned_reason(trial.number, run, value))
            return
        promoted = self.client.promote_trial(self.project_id, self.sweep_id, trial.number, run.rung + 1)
        self.logger.info(
            "试验 %s 晋升到第 %s 层：从第 %s 步的检查点续训（运行 %s）",
            trial.number,
            run.rung + 1,
            run.current_step,
            promoted.id,
        )

    def _record_told(self, trial: SweepTrial, frozen: optuna.trial.FrozenTrial, run: Run) -> None:
        """Optuna recorded the outcome but the controller died before the API did."""
        if frozen.state == OptunaState.COMPLETE:
            self._end(trial, TrialState.COMPLETED, objective=frozen.value)
        elif frozen.state == OptunaState.PRUNED:
            value = frozen.intermediate_values.get(run.current_step)
            self._end(trial, TrialState.PRUNED, objective=value, reason=self._pruned_reason(trial.number, run, value))
        else:
            state = TrialState.CANCELLED if run.status == RunStatus.CANCELLED else TrialState.FAILED
            self._end(trial, state, reason=run.message or f"试验的运行 {run.id} {run.status.value}")

    def _pruned_reason(self, number: int, run: Run, value: float | None) -> str:
        """`第 300 步 eval_loss=2.31，在本层 8 个试验中排第 6，被 ASHA 提前停止`."""
        step, metric = run.current_step, self.sweep.objective.metric
        peers = [
            t.intermediate_values[step]
            for t in self.study.get_trials(deepcopy=False)
            if step in t.intermediate_values and t.number != number
        ]
        name = PRUNER_NAMES[self.sweep.pruner]
        if value is None:
            return f"第 {step} 步被 {name} 提前停止"
        better = [
            v for v in peers if (v > value if self.sweep.objective.direction == Direction.MAXIMIZE else v < value)
        ]
        return (
            f"第 {step} 步 {metric}={value:.4g}，在本层 {len(peers) + 1} 个试验中排第 {len(better) + 1}，"
            f"被 {name} 提前停止"
        )

    def _end(self, trial: SweepTrial, state: TrialState, objective: float | None = None, reason: str | None = None):
        self.client.end_trial(self.project_id, self.sweep_id, trial.number, state.value, objective, reason)
        shown = f"，目标 {objective:.4g}" if objective is not None else ""
        self.logger.info("试验 %s %s%s%s", trial.number, state.value, shown, f"：{reason}" if reason else "")

    def _trial_id(self, number: int) -> int:
        return self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)

    def _finish(self) -> SweepStatus:
        sweep = self.client.get_sweep(self.project_id, self.sweep_id)
        counts = {state: sum(t.state == state for t in sweep.trials) for state in TrialState}
        if sweep.best is None:
            status = SweepStatus.FAILED
            summary = f"{len(sweep.trials)} 个试验都没有得到目标指标 {sweep.objective.metric}"
        else:
            status = SweepStatus.COMPLETED
            summary = (
                f"{len(sweep.trials)} 个试验：完成 {counts[TrialState.COMPLETED]}，剪枝 {counts[TrialState.PRUNED]}，"
                f"失败 {counts[TrialState.FAILED]}；最佳试验 {sweep.best.number} {sweep.objective.metric}="
                f"{sweep.best.objective:.4g}；共训练 {sweep.steps_trained} 步，续训节省 {sweep.steps_saved} 步"
            )
        try:
            self.client.update_sweep(self.project_id, self.sweep_id, status=status.value, message=summary)
        except ApiError as exc:
            if exc.status_code != 409:
                raise
            return self.client.get_sweep(self.project_id, self.sweep_id).status  # cancelled meanwhile
        self.logger.info("调参结束（%s）：%s", status.value, summary)
        return status


def _flow_run_name() -> str:
    return f"调参 · {current_flow_run.parameters['sweep_id']}"


@flow(name="sweep-controller", flow_run_name=_flow_run_name, persist_result=False, log_prints=True)
def sweep_controller(project_id: str, sweep_id: str):
    """Drive sweep `sweep_id` of project `project_id` (LTM_API_URL) until it completes, fails or is cancelled."""
    logger = get_run_logger()
    settings = Settings()
    with Client.from_env() as client:
        driver = SweepDriver(client, project_id, sweep_id, logger)
        logger.info("调参 %s 的控制器开始：已有 %s 个试验", driver.sweep.name, len(driver.sweep.trials))
        status = driver.drive(settings.sweep_poll_seconds)
    if status == SweepStatus.CANCELLED:
        return Cancelled(message="调参已取消，进行中的试验已各自保存检查点")
    return {"sweep_id": sweep_id, "status": status.value}
