"""Run lifecycle shared by the routers and the reconciler: create, resume, move status, cancel."""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from ltm import artifact_paths, datasets, gpus
from ltm.api import admission, hang, integrity, trainer_catalog
from ltm.api.auth import hash_token, issue_launch_code, issue_run_token
from ltm.api.errors import Refusal, conflict, not_found, unprocessable
from ltm.api.ids import ARTIFACT_KINDS, well_formed
from ltm.api.run_state import StatusWatch, can_move, cancelled_elsewhere, stamps
from ltm.api.trainer_catalog import Layer, effective_hyperparameters
from ltm.ids import new_id
from ltm.launchers import Launcher, LauncherUnavailable, NoopLauncher, Observation
from ltm.models import RunStatus
from ltm.settings import Settings
from ltm.store import Database, to_db_time, utc_now
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import leases as lease_store
from ltm.store import runs as run_store
from ltm.trainers import DEFAULT_TRAINER, SCRIPT

log = logging.getLogger("ltm.api")
HAND_OVER_THREADS = 4
STRANDED_AFTER_RECONCILES = 3  # a run being created right now is handed over by its own request
SWEEP_COLUMNS = ("sweep_id", "trial_number", "rung", "stop_at_step")
INVALID_LAUNCH_CODE = "启动码无效、已过期或已使用：运行令牌只发给运行 {run_id} 自己刚启动的训练流程"
_EPOCHS = "hyperparameters.num_epochs"
_NOTHING_LEFT = (
    "检查点 {artifact} 是原运行最后一步（第 {step} 步）的检查点，恢复后的训练总步数没有超过它，"
    "会得到一个立即完成的空运行：请调高训练轮数（超参数 num_epochs）后再恢复"
)


def _at_the_end(run: dict, artifact: dict) -> bool:
    step, total = artifact.get("step"), run.get("total_steps")
    return step is not None and total is not None and step >= total


def run_config(project: dict, body) -> dict:
    """A create body as the service takes it: its hyperparameters layered over the project defaults, the trainer
    and priority filled from the project."""
    config = body.model_dump()
    config["layers"] = [
        trainer_catalog.project_defaults(project["default_hyperparameters"]),
        trainer_catalog.run_values(body.hyperparameters),
    ]
    config["resources"] = body.resources.model_dump(exclude_none=True)
    if body.entrypoint:
        config["trainer"] = SCRIPT
    else:
        trainer = body.trainer or project["default_trainer"] or DEFAULT_TRAINER
        config["trainer"] = trainer_catalog.checked_trainer(trainer)
    if body.priority is None:
        config["priority"] = project["default_priority"]
    return config


class RunService:
    def __init__(self, db: Database, launcher: Launcher, settings: Settings) -> None:
        self.db = db
        self.launcher = launcher
        self.settings = settings
        self.watch = StatusWatch()
        self.waiting: dict[str, admission.Waiting] = {}  # the last admission cycle's queue, by run id
        self._admitting = threading.Lock()
        self._admission_due = threading.Event()
        self.stopping = False
        self._handing_over = ThreadPoolExecutor(max_workers=HAND_OVER_THREADS, thread_name_prefix="hand-over")
        self._cancelling_here: set[str] = set()  # runs a POST …/cancel is stopping right now (audited by its router)
        self.listeners: list[Callable[[dict, RunStatus | None], None]] = []  # told of every status move
        self.on_waiting: Callable[[list, list], None] | None = None  # told of the GPU requests left waiting

    def get(self, project_id: str, run_id: str) -> dict:
        run = run_store.get(self.db, run_id) if well_formed(run_id, "run") else None
        if run is None or run["project_id"] != project_id:
            raise not_found("运行", run_id)
        return run

    def shown(self, run: dict) -> dict:
        """The run as answered: with its place and reason in the GPU queue while it waits for devices."""
        waiting = self.waiting.get(run["id"]) if run["status"] == RunStatus.QUEUED.value else None
        return {
            **run,
            "queue_position": waiting.position if waiting else None,
            "queue_reason": waiting.reason if waiting else None,
        }

    def with_artifacts(self, run: dict) -> dict:
        return {**self.shown(run), "artifacts": artifact_store.list_for_run(self.db, run["id"])}

    def plan(self, project: dict, config: dict) -> dict:
        """What `config` would run (a RunPreview), after every check create makes before it stores anything;
        `config["layers"]` are its hyperparameter sources, lowest first."""
        if config.get("dataset") is not None:
            refused = datasets.refusal(config["dataset"], self.settings.dataset_root_urls)
            if refused:
                raise unprocessable(f"数据集：{refused}", "dataset")
        layers: list[Layer] = config.get("layers") or [trainer_catalog.run_values(config.get("hyperparameters") or {})]
        values, effective = effective_hyperparameters(config["trainer"], layers)
        total = trainer_catalog.total_steps(config["trainer"], effective)
        if project["archived"]:
            raise conflict(f"项目 {project['id']} 已归档，不能创建运行")
        self._needs_admission(config["resources"])
        return {
            **{key: config.get(key) for key in ("trainer", "model", "dataset", "resources")},
            "priority": config.get("priority") or 0,
            "hyperparameters": values,
            "effective_hyperparameters": [vars(entry) for entry in effective],
            "total_steps": total,
        }

    def create(self, project: dict, config: dict, created_by: str, resumed_from: dict | None = None) -> dict:
        """Store a queued run and hand it to the launcher, or to GPU admission when it asks for GPUs of the
        declared inventory; nothing stays stored if the launcher fails."""
        config = {**config, "hyperparameters": self.plan(project, config)["hyperparameters"]}
        admitted = self._needs_admission(config["resources"])
        now = utc_now()
        with self.db.writing():
            number = run_store.count_for_project(self.db, project["id"]) + 1
            run = {
                "id": new_id("run"),
                "project_id": project["id"],
                "name": config.get("name") or f"run-{number:03d}",
                "status": RunStatus.QUEUED.value,
                "progress": 0.0,
                "model": config["model"],
                "dataset": config["dataset"],
                "trainer": config["trainer"],
                "hyperparameters": config["hyperparameters"],
                "resources": config["resources"],
                "metrics": {},
                "gpu_utilization": None,
                "created_at": now,
                "started_at": None,
                "updated_at": now,
                "finished_at": None,
                "cancelled_at": None,
                "resumed_from": resumed_from["id"] if resumed_from else None,
                "parent_run_id": resumed_from["run_id"] if resumed_from else None,
                "start_step": (resumed_from or {}).get("step") or 0,
                "current_step": (resumed_from or {}).get("step") or 0,
                "total_steps": None,
                "project_version": project["version"],
                "message": None,
                "flow_run_id": None,
                "metric_steps": {},
                "priority": config.get("priority") or 0,
                "created_by": created_by,
                "devices": [],
                "gpu_host": None,
                "leased_at": None,
                "released_at": None,
                "entrypoint": config.get("entrypoint"),
                "source": config.get("source"),
                "processes": config.get("processes"),
                "code_version": None,
                "environment": None,
                "max_restarts": config.get("max_restarts"),
                "restart_of": (config.get("restart") or {}).get("restart_of"),
                "restarts": (config.get("restart") or {}).get("restarts") or 0,
                "labels": [],
                "preempted_by": None,
                "preempted_at": None,
                "progressed_at": None,
                "hung_at": None,
                **{key: (config.get("sweep") or {}).get(key) for key in SWEEP_COLUMNS},
            }
            run_store.insert(self.db, run)
        try:
            if admitted:
                self.admit()
            else:
                self._hand_over(run)
        except LauncherUnavailable as exc:
            lease_store.unlease(self.db, run["id"])
            auth_store.revoke_run_tokens(self.db, run["id"])
            run_store.delete(self.db, run["id"])
            raise Refusal(503, f"编排服务不可用，运行未创建：{exc}") from exc
        return self.get(project["id"], run["id"])

    def _needs_admission(self, resources: dict) -> bool:
        """Whether a run with `resources` waits for leased devices (it asks for GPUs and hosts registered some);
        422 naming the field when no registered host could ever hold it."""
        gpu_type, count = gpus.requested(resources)
        if count == 0 or not lease_store.inventory_declared(self.db):
            return False
        devices = admission.devices_of(lease_store.devices(self.db), utc_now(), None)
        refused = admission.refusal(gpu_type, count, devices)
        if refused:
            raise unprocessable(refused[1], refused[0])
        return True

    def admit(self, background: bool = False) -> None:
        """One admission cycle: lease devices to the waiting runs that fit, in queue order, and remember why the
        others wait (one cycle at a time); then hand each leased run over with CUDA_VISIBLE_DEVICES set. In the
        background, hand-overs go to worker threads, so one slow orchestrator call holds back no later cycle; a
        run whose hand-over fails gives its devices back and waits for the next cycle."""
        self._admission_due.clear()
        with self._admitting:
            if not lease_store.inventory_declared(self.db):
                self.waiting = {}
                return
            offline_after = timedelta(seconds=self.settings.host_offline_seconds)
            requests = admission.requests_of(lease_store.waiting_runs(self.db))
            devices = admission.devices_of(lease_store.devices(self.db), utc_now(), offline_after)
            grants, self.waiting = admission.plan(requests, devices)
            leased = lease_store.lease(self.db, [(g.run_id, g.host, g.device_ids) for g in grants])
        self.watch.notify()
        if self.on_waiting and self.waiting:
            granted = {g.run_id for g in grants}
            try:
                self.on_waiting([r for r in requests if r.run_id in self.waiting], devices if not granted else [])
            except Exception:  # preemption is a best effort of each cycle: the next cycle tries again
                log.exception("抢占判断失败")
        if background:
            for run_id in leased:
                self._handing_over.submit(self._hand_over_leased, run_id)
            return
        for index, run_id in enumerate(leased):
            try:
                self._hand_over(run_store.get(self.db, run_id))
            except LauncherUnavailable:
                for waiting_again in leased[index:]:
                    lease_store.unlease(self.db, waiting_again)
                raise

    def _hand_over_leased(self, run_id: str) -> None:
        try:
            self._hand_over(run_store.get(self.db, run_id))
        except LauncherUnavailable as exc:
            lease_store.unlease(self.db, run_id)
            log.warning("运行 %s 已分配 GPU 但未能交给编排服务，设备已收回，下一轮再分配：%s", run_id, exc)

    def admit_when_due(self, timeout: float) -> None:
        """Admit as soon as devices may have freed up (a run ended), or after `timeout` at the latest."""
        self._admission_due.wait(timeout)
        if not self.stopping:
            self.admit(background=True)

    def admit_soon(self) -> None:
        """Run an admission cycle as soon as the admission loop can (devices were registered or freed)."""
        self._admission_due.set()

    def stop(self) -> None:
        """End `admit_when_due` loops before the store closes."""
        self.stopping = True
        self._admission_due.set()
        self._handing_over.shutdown(wait=False, cancel_futures=True)

    def _hand_over(self, run: dict) -> None:
        """Submit a stored run with a fresh launch code (and its leased devices, if any) and record the
        orchestrator's id. Submitting the same run twice yields its first flow run (the launcher's idempotency
        key is the run id)."""
        env = {}
        if self.settings.auth:
            env["LTM_LAUNCH_CODE"] = issue_launch_code(self.db, run["id"])
        work_queue, leased = lease_store.placement(self.db, run["id"])
        if leased:
            env["CUDA_VISIBLE_DEVICES"] = gpus.visible_devices([d for d, _ in leased], [i for _, i in leased])
        flow_run_id = self.launcher.submit({**run, "work_queue": work_queue}, env)
        if flow_run_id:
            self.update(run["id"], {"flow_run_id": flow_run_id})

    def hand_over_stranded(self) -> None:
        """Queued runs stored but never handed over (the API died between the two) go now; one that still cannot
        be handed over after LTM_LAUNCH_CODE_SECONDS ends 失败 with the reason."""
        if isinstance(self.launcher, NoopLauncher):
            return  # runs wait for a direct flow call
        now = utc_now()
        grace = timedelta(seconds=STRANDED_AFTER_RECONCILES * self.settings.reconcile_seconds)
        admitting = lease_store.inventory_declared(self.db)
        for run in run_store.stranded(self.db, RunStatus.QUEUED.value, now - grace):
            if not run["devices"] and gpus.requested(run["resources"])[1] > 0 and admitting:
                continue  # admission hands it over once it holds devices
            try:
                self._hand_over(run)
            except LauncherUnavailable as exc:
                since = to_db_time(run["leased_at"] or run["created_at"])
                if now - since < timedelta(seconds=self.settings.launch_code_seconds):
                    raise
                self.move(run, RunStatus.FAILED, f"运行创建后一直未能交给编排服务：{exc}")

    def resume(
        self,
        project: dict,
        source_run: dict,
        artifact_id: str,
        overrides: dict,
        created_by: str,
        sweep: dict | None = None,
        restart: dict | None = None,
    ) -> dict:
        """A new run from checkpoint `artifact_id` of `source_run`; `sweep` places it in a sweep's trial, `restart`
        ({"restart_of", "restarts"}) marks it as an automatic restart or requeue of that run."""
        artifact = artifact_store.get(self.db, artifact_id) if well_formed(artifact_id, *ARTIFACT_KINDS) else None
        if artifact is None or artifact["run_id"] != source_run["id"]:
            raise not_found("运行 " + source_run["id"] + " 的工件", artifact_id)
        if artifact["type"] != "checkpoint":
            raise Refusal(422, f"工件 {artifact_id} 的类型是 {artifact['type']}，只能从检查点（checkpoint）恢复")
        try:
            artifact_paths.checked(
                artifact["path"], self.settings.artifact_root_url, source_run["project_id"], source_run["id"]
            )
        except artifact_paths.OutsideRunFolder as exc:
            raise conflict(
                f"检查点 {artifact_id} 的文件不在运行 {source_run['id']} 自己的目录中，不能从它恢复：{exc}"
            ) from None
        integrity.verify(self.db, self.settings.artifact_root_url, artifact)
        config = {
            "name": overrides.get("name"),
            "model": overrides.get("model") or source_run["model"],
            "dataset": overrides.get("dataset") or source_run["dataset"],
            "trainer": overrides.get("trainer") or source_run["trainer"],
            "layers": [
                trainer_catalog.source_run_values(source_run["hyperparameters"]),
                trainer_catalog.run_values(overrides.get("hyperparameters") or {}),
            ],
            "resources": {**source_run["resources"], **(overrides.get("resources") or {})},
            "priority": overrides.get("priority", source_run["priority"]),
            **{key: overrides.get(key, source_run[key]) for key in ("entrypoint", "source", "processes")},
            "sweep": sweep,
            "restart": restart,
        }
        if "trainer" in overrides and "entrypoint" not in overrides:
            config.update(entrypoint=None, source=None, processes=None)  # a script run resumed by a trainer
        if config["entrypoint"]:
            config["trainer"] = SCRIPT
        elif config["trainer"] == SCRIPT:
            config["trainer"] = DEFAULT_TRAINER
        if _at_the_end(source_run, artifact):
            self._refuse_nothing_left(project, config, overrides, artifact)
        return self.create(project, config, created_by, resumed_from=artifact)

    def _refuse_nothing_left(self, project: dict, config: dict, overrides: dict, artifact: dict) -> None:
        """A resume from the source run's final checkpoint must train more steps than the checkpoint holds; a
        script run's steps are its own, so only unchanged overrides are refused there."""
        total = self.plan(project, config)["total_steps"]
        if total is None:
            if overrides.get("hyperparameters") or "entrypoint" in overrides:
                return
        elif total > artifact["step"]:
            return
        raise unprocessable(_NOTHING_LEFT.format(artifact=artifact["id"], step=artifact["step"]), _EPOCHS)

    def exchange_launch_code(self, run_id: str, code: str) -> str:
        """The run token for the flow that holds its run's launch code, once, and only after the launcher reports
        that flow started: a code read from the orchestrator before then, or after it was spent, is worthless."""
        issued_after = utc_now() - timedelta(seconds=self.settings.launch_code_seconds)
        code_hash = hash_token(code)
        if not well_formed(run_id, "run"):
            raise not_found("运行", run_id)
        if not auth_store.launch_code_is_live(self.db, code_hash, run_id, issued_after):
            raise Refusal(401, INVALID_LAUNCH_CODE.format(run_id=run_id))
        run = run_store.get(self.db, run_id)
        if run is None:
            raise Refusal(401, INVALID_LAUNCH_CODE.format(run_id=run_id))
        try:
            started = self.launcher.started(run)
        except LauncherUnavailable as exc:
            raise Refusal(503, f"编排服务不可用，无法确认运行 {run_id} 的训练流程已启动：{exc}") from exc
        if not started:
            raise conflict(f"运行 {run_id} 的训练流程尚未启动，启动码只能由已启动的流程换取运行令牌")
        if not auth_store.spend_launch_code(self.db, code_hash, run_id, issued_after):
            raise Refusal(401, INVALID_LAUNCH_CODE.format(run_id=run_id))
        return self._run_token(run_id, "启动码")

    def issue_run_token(self, run: dict, caller: str) -> str:
        """A run token for someone who trains a queued run themselves (a direct flow call); a run handed to the
        launcher is trained by the launched flow only. Earlier tokens of the run stop working."""
        if run["status"] != RunStatus.QUEUED.value or run["flow_run_id"] is not None:
            where = f"已交给编排流程 {run['flow_run_id']}" if run["flow_run_id"] else f"状态为 {run['status']}"
            raise conflict(f"运行 {run['id']} {where}，只能为尚未开始、未交给编排服务的运行签发运行令牌")
        auth_store.revoke_run_tokens(self.db, run["id"])
        return self._run_token(run["id"], caller)

    def _run_token(self, run_id: str, issued_by: str) -> str:
        """Issued, then checked against the run's status: a run that ended meanwhile revokes its tokens after
        its status changed, so either that revocation or this one catches the new token."""
        token = issue_run_token(self.db, run_id, issued_by)
        run = run_store.get(self.db, run_id)
        if run is None or RunStatus(run["status"]).is_terminal:
            auth_store.revoke_run_tokens(self.db, run_id)
            raise conflict(f"运行 {run_id} 已结束或已删除，不再签发运行令牌")
        return token

    @staticmethod
    def accepting(run: dict, what: str) -> None:
        """A finished run's record is final: nothing more is ingested into it."""
        status = RunStatus(run["status"])
        if status.is_terminal:
            raise conflict(f"运行 {run['id']} 已结束（{status.value}），不再接受{what}")

    def update(self, run_id: str, values: dict) -> None:
        with self.db.writing():
            run_store.update(self.db, run_id, {**values, "updated_at": utc_now()})

    def report(self, project_id: str, run_id: str, values: dict) -> dict:
        """Apply what a flow reports: an optional status move plus progress fields."""
        status = values.pop("status", None)
        if "flow_run_id" in values:
            self._check_flow_run_claim(self.get(project_id, run_id), values)
        with self.db.writing():
            run = self.get(project_id, run_id)
            if values.get("flow_run_id") and run["flow_run_id"] not in (None, values["flow_run_id"]):
                raise conflict(f"运行 {run_id} 已关联编排流程 {run['flow_run_id']}，flow_run_id 不能修改")
            current = RunStatus(run["status"])
            if current.is_terminal:
                raise conflict(f"运行 {run_id} 已结束（{current.value}），不再接受上报")
            if status is not None:
                values.update(self._checked_move(run, RunStatus(status)))
            if values.get("current_step") is not None and values["current_step"] > run["current_step"]:
                values["progressed_at"] = utc_now()  # hang detection's clock
            run_store.update(self.db, run_id, {**values, "updated_at": utc_now()})
        if status is not None:
            self._moved(run_id, RunStatus(status), current)
        return self.get(project_id, run_id)

    def _check_flow_run_claim(self, run: dict, values: dict) -> None:
        """A flow may name its own orchestrator run once; the launcher must confirm that it trains this run,
        so no one can point a run at another run's flow and cancel that one through it."""
        claimed = values["flow_run_id"]
        if claimed == run["flow_run_id"]:
            del values["flow_run_id"]
            return
        if run["flow_run_id"] is not None or claimed is None:
            raise conflict(f"运行 {run['id']} 已关联编排流程 {run['flow_run_id']}，flow_run_id 不能修改")
        try:
            owned = self.launcher.owns(run, claimed)
        except LauncherUnavailable as exc:
            raise Refusal(503, f"编排服务不可用，无法确认 flow_run_id：{exc}") from exc
        if not owned:
            raise conflict(f"flow_run_id：编排服务中的流程 {claimed} 不是运行 {run['id']} 的训练流程")

    def move(self, run: dict, new: RunStatus, message: str | None = None) -> None:
        with self.db.writing():
            fresh = run_store.get(self.db, run["id"])
            values = self._checked_move(fresh, new)
            if message is not None:
                values["message"] = message
            if not values:  # already there (a second cancel while 取消中): the answer is the current state
                return
            run_store.update(self.db, run["id"], values)
        self._moved(run["id"], new, RunStatus(fresh["status"]))

    def _moved(self, run_id: str, new: RunStatus, previous: RunStatus | None = None) -> None:
        """A finished run's flow token has nothing left to do and its devices go to the next run in the queue;
        waiters learn about the move; a cancel the API did not start itself is audited."""
        if previous is not None and cancelled_elsewhere(previous, new) and run_id not in self._cancelling_here:
            self._audit_outside_cancel(run_id, new)
        if new.is_terminal:
            auth_store.revoke_run_tokens(self.db, run_id)
            lease_store.release(self.db, [run_id], utc_now())
            self.admit_soon()
        self.watch.notify()
        if self.listeners:
            run = run_store.get(self.db, run_id)
            for listener in self.listeners:
                try:
                    listener(run, previous)
                except Exception:  # a listener (notifications, restarts) must never undo or block a move
                    log.exception("运行 %s 状态变为 %s 后的处理失败", run_id, new.value)

    def _audit_outside_cancel(self, run_id: str, new: RunStatus) -> None:
        """A cancel from the Prefect UI (or the flow's own process) reaches the store as a status it reports or the
        reconciler observes, never through POST …/cancel: the trail names the orchestrator as the actor."""
        run = run_store.get(self.db, run_id)
        if run is None:
            return
        flow_run = run["flow_run_id"]
        actor = "Prefect" if flow_run else "训练流程"
        where = f"在 Prefect 中取消（流程运行 {flow_run}）" if flow_run else "训练流程报告取消"
        details = f"{where}，运行状态变为 {new.value}"
        auth_store.record(self.db, actor, "取消运行", run["project_id"], run_id, target=run["name"], details=details)

    def _checked_move(self, run: dict, new: RunStatus) -> dict:
        current = RunStatus(run["status"])
        if not can_move(current, new):
            raise conflict(f"运行 {run['id']} 当前状态为 {current.value}，不能变为 {new.value}")
        return stamps(run, new, utc_now()) if new != current else {}

    def cancel(self, project_id: str, run_id: str) -> tuple[int, dict]:
        """200 with the stopped run, or 202 while it is still saving its checkpoint."""
        run = self.get(project_id, run_id)
        status = RunStatus(run["status"])
        if status.is_terminal:
            raise conflict(f"运行 {run_id} 已结束（{status.value}），无法取消")
        self.request_cancel(run)
        if status != RunStatus.QUEUED:
            self.watch.wait_for(lambda: self._is_terminal(run_id), timeout=self.settings.cancel_wait_seconds)
        run = self.get(project_id, run_id)
        return (202 if run["status"] == RunStatus.CANCELLING.value else 200), self.with_artifacts(run)

    def request_cancel(self, run: dict) -> None:
        """Ask the orchestrator to stop `run` and mark it 取消中 (已取消 while it still waits), without waiting;
        503 when the orchestrator cannot be reached."""
        run_id = run["id"]
        self._cancelling_here.add(run_id)
        try:
            self.launcher.cancel(run)
            queued = run["status"] == RunStatus.QUEUED.value
            self._move_quietly(run_id, RunStatus.CANCELLED if queued else RunStatus.CANCELLING)
        except LauncherUnavailable as exc:
            raise Refusal(503, f"编排服务不可用，未能取消运行：{exc}") from exc
        finally:
            self._cancelling_here.discard(run_id)

    def _move_quietly(self, run_id: str, new: RunStatus) -> None:
        """Move unless the run got somewhere else first (e.g. it finished meanwhile)."""
        try:
            self.move(run_store.get(self.db, run_id), new)
        except Refusal:
            pass

    def _is_terminal(self, run_id: str) -> bool:
        return RunStatus(run_store.get(self.db, run_id)["status"]).is_terminal

    def reconcile(self) -> list[Observation]:
        """Catch the store up with the orchestrator for runs it still thinks are active; free leases nobody
        should hold any more."""
        stale = lease_store.stale(self.db)
        if stale:
            lease_store.release(self.db, stale, utc_now())
            self.admit_soon()
        self.hand_over_stranded()
        active = run_store.list_by_status(self.db, [s.value for s in RunStatus if s.is_active])
        observations = self.launcher.observe(active)
        for observation in observations:
            run = run_store.get(self.db, observation.run_id)
            if run and not RunStatus(run["status"]).is_terminal:
                try:
                    self.move(run, observation.status, observation.message)
                except Refusal:
                    pass
        hang.check(self)
        return observations
