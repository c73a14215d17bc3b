"""Preemption: the head of a GPU queue, in a project that allows it, may take the devices of lower-priority runs on
one host that are themselves in projects allowing it (both owners agreed). Each of those runs is cancelled with a
checkpoint (reason 被抢占, naming the run that needed the GPUs) and queued again as a resume from that checkpoint,
lineage kept. A run preempted, or requeued after a preemption, within LTM_PREEMPTION_GRACE_SECONDS is not
preempted again, so nothing thrashes."""

import logging
from datetime import timedelta

from ltm.api import admission, trainer_catalog
from ltm.api.errors import Refusal
from ltm.api.run_service import RunService
from ltm.models import RunStatus
from ltm.store import artifacts as artifact_store
from ltm.store import auth as auth_store
from ltm.store import projects as project_store
from ltm.store import restarts as restart_store
from ltm.store import runs as run_store
from ltm.store import utc_now

log = logging.getLogger("ltm.api")
ACTOR = "ltm 抢占"


class Preemption:
    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        self.db = runs.db
        self.grace = timedelta(seconds=runs.settings.preemption_grace_seconds)

    def for_waiting(self, requests: list[admission.Request], devices: list[admission.Device]) -> None:
        """For each queue's head that waits, in a project that allows preemption: preempt the fewest lower-priority
        runs on one host that free enough devices, unless runs are already being preempted for it."""
        if not devices:
            return
        now = utc_now()
        holders = self._holders({d.holder for d in devices if d.holder}, now)
        freeing = {run["preempted_by"] for run in self._being_preempted()}
        heads: dict[str, admission.Request] = {}
        for request in requests:
            heads.setdefault(request.queue, request)
        for request in heads.values():
            if request.run_id in freeing:
                continue
            run = run_store.get(self.db, request.run_id)
            project = project_store.get_row(self.db, run["project_id"]) if run else None
            if not project or not project["preemption"]:
                continue
            chosen = admission.victims(request, run["priority"] or 0, devices, holders)
            for victim in chosen or []:
                self._preempt(victim, run, request)
                holders.pop(victim, None)

    def _holders(self, run_ids: set[str], now) -> dict[str, admission.Holder]:
        found = {}
        for run_id in run_ids:
            run = run_store.get(self.db, run_id)
            if run is None or RunStatus(run["status"]).is_terminal:
                continue
            found[run_id] = admission.Holder(
                run_id=run_id,
                priority=run["priority"] or 0,
                protected=self._protected(run, now),
                leased_at=run["leased_at"] or run["created_at"],
            )
        return found

    def _protected(self, run: dict, now) -> bool:
        """In a project that does not allow preemption, preempted already, or a requeue of a run preempted within
        the grace time."""
        project = project_store.get_row(self.db, run["project_id"])
        if not project or not project["preemption"] or run["preempted_by"]:
            return True
        origin = run_store.get(self.db, run["restart_of"]) if run["restart_of"] else None
        return bool(origin and origin["preempted_at"] and now - origin["preempted_at"] < self.grace)

    def _being_preempted(self) -> list[dict]:
        active = run_store.list_by_status(self.db, [s.value for s in RunStatus if s.is_active])
        return [run for run in active if run["preempted_by"]]

    def _preempt(self, victim_id: str, by: dict, request: admission.Request) -> None:
        victim = run_store.get(self.db, victim_id)
        if victim is None or RunStatus(victim["status"]).is_terminal:
            return
        reason = f"被抢占：运行 {by['name']}（{by['id']}，优先级 {by['priority'] or 0}）需要 {request.label}"
        self.runs.update(victim_id, {"preempted_by": by["id"], "preempted_at": utc_now(), "message": reason})
        try:
            self.runs.request_cancel(run_store.get(self.db, victim_id))
        except Refusal as exc:
            log.warning("未能抢占运行 %s：%s", victim_id, exc.detail)
            return
        auth_store.record(self.db, ACTOR, "抢占运行", victim["project_id"], victim_id, victim["name"], reason)

    def requeue(self, run: dict, previous: RunStatus | None) -> None:
        """A listener: a preempted run that ended 已取消 is queued again, as a resume from its newest checkpoint
        (from scratch when it saved none), once."""
        if run is None or run["status"] != RunStatus.CANCELLED.value or not run["preempted_by"]:
            return
        if restart_store.restart_of(self.db, run["id"]):
            return
        project = project_store.get_row(self.db, run["project_id"])
        checkpoints = [a for a in artifact_store.list_for_run(self.db, run["id"]) if a["type"] == "checkpoint"]
        newest = max(checkpoints, key=lambda a: (a["step"] or 0, a["created_at"]), default=None)
        restart = {"restart_of": run["id"], "restarts": run["restarts"] or 0}
        name = f"{run['name'][:150]}-续"
        if newest is not None:
            again = self.runs.resume(project, run, newest["id"], {"name": name}, run["created_by"], restart=restart)
            where = f"已在第 {newest['step']} 步保存检查点"
        else:
            again = self.runs.create(project, _same_config(run, name, restart), run["created_by"])
            where = "没有检查点，从头"
        by = run_store.get(self.db, run["preempted_by"])
        named = f"运行 {by['name']}（{by['id']}，优先级 {by['priority'] or 0}）" if by else run["preempted_by"]
        message = f"被抢占：{named}需要它的 GPU；{where}，已重新排队为 {again['name']}（{again['id']}）"
        self.runs.update(run["id"], {"message": message})
        self.runs.update(again["id"], {"message": f"运行 {run['name']}（{run['id']}）被抢占后重新排队"})
        auth_store.record(self.db, ACTOR, "重新排队", run["project_id"], again["id"], again["name"], message)


def _same_config(run: dict, name: str, restart: dict) -> dict:
    keys = ("model", "dataset", "trainer", "resources", "priority", "entrypoint", "source", "processes")
    config = {key: run[key] for key in keys}
    return {
        **config,
        "name": name,
        "layers": [trainer_catalog.source_run_values(run["hyperparameters"])],
        "restart": restart,
    }
