"""GPU admission benchmarks: one admission cycle over a long queue, create → 运行中 on a free GPU, and many short
GPU runs through a few declared GPUs with every lease accounted for.

11 fills a store through an API process (`LTM_LAUNCHER=none`, no GPU hosts yet, so nothing is admitted), stops
it, registers 8 hosts × 8 A100s in-process, lets one admission cycle lease all but a few devices, and then times
the store side of admission on that DuckDB file. 12 and 13 start their own `ltm up` with `LTM_GPUS=A100:<n>`.
Run with `make bench` (or `python -m bench.bench_gpus [--smoke] [--only 11|12|13]`).
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from bench.common import figure
from ltm import Client
from ltm.api import admission
from ltm.api.run_service import RunService
from ltm.launchers import NoopLauncher
from ltm.models import Run, RunStatus
from ltm.settings import Settings
from ltm.store import Database, utc_now
from ltm.store import leases as lease_store
from ltm.store import resources as resource_store
from ltm.store import runs as run_store
from ltm.testing import ApiProcess, LtmSystem, wait_until

HOST_MODEL = "A100"
SHORT = {"num_epochs": 1, "steps_per_epoch": 2, "step_seconds": 0}
LONG = {"num_epochs": 1, "steps_per_epoch": 2000, "step_seconds": 0.05}
STAMP_SKEW = 1.0  # seconds two leases of one device may appear to overlap by; see check_leases


@dataclass
class Scale:
    waiting: int  # 11: queued GPU runs
    hosts: int
    per_host: int
    free: int  # 11: devices freed on as many hosts for the read + plan cycles (each then plans that many grants)
    cycles: int  # 11: read + plan samples
    grant_cycles: int  # 11: full cycles after freeing one host
    to_running: int  # 12: samples of each kind
    gpus: int  # 12, 13: LTM_GPUS=A100:<gpus>
    short_runs: int  # 13


FULL = Scale(waiting=1000, hosts=8, per_host=8, free=2, cycles=21, grant_cycles=7, to_running=5, gpus=4, short_runs=200)
SMOKE = Scale(waiting=100, hosts=8, per_host=8, free=2, cycles=5, grant_cycles=2, to_running=1, gpus=2, short_runs=8)


# 11 — admission cycle


def request_of(index: int) -> tuple[dict, int]:
    """Resources and priority of the index-th waiting run: mostly single A100s, some 2, 4 and 8, some of any type,
    a few urgent ones."""
    if index % 50 == 17:
        return {"gpu_type": HOST_MODEL, "gpu_count": 1}, 10
    count = [1, 1, 1, 1, 1, 2, 2, 4, 1, 8][index % 10]
    return ({"gpu_count": count} if index % 7 == 3 else {"gpu_type": HOST_MODEL, "gpu_count": count}), 0


def fill_queue(home: Path, scale: Scale) -> tuple[list[str], list[str]]:
    """Through the API, before any host registers (so nothing is admitted): one single-A100 run per device, ahead
    of everything, then the waiting runs. Returns (holder ids, waiting ids)."""
    api = ApiProcess(home, LTM_LAUNCHER="none").start()
    try:
        with Client(api.url, timeout=60) as client:
            project = client.create_project(name="bench-gpus", owner="bench")
            holders = scale.hosts * scale.per_host

            def create(index: int) -> str:
                if index < holders:
                    resources, priority = {"gpu_type": HOST_MODEL, "gpu_count": 1}, 20  # ahead of any waiting run
                else:
                    resources, priority = request_of(index - holders)
                run = client.create_run(
                    project.id, model="m", dataset="d", hyperparameters=SHORT, resources=resources, priority=priority
                )
                assert run.devices == [] and run.status == RunStatus.QUEUED, run
                return run.id

            started = time.perf_counter()
            # One sender for the holders, so they are the oldest runs and take the devices first.
            ids = [create(index) for index in range(holders)]
            with ThreadPoolExecutor(4) as pool:
                ids += list(pool.map(create, range(holders, holders + scale.waiting)))
            print(f"11 created {len(ids):,} GPU runs over HTTP in {time.perf_counter() - started:.1f} s", flush=True)
            return ids[:holders], ids[holders:]
    finally:
        api.stop()


def register_hosts(db: Database, scale: Scale) -> None:
    for host in range(scale.hosts):
        name = f"gpu-{host:02d}"
        devices = [
            {"id": f"sim-{name}-{HOST_MODEL}-{i}", "index": i, "model": HOST_MODEL, "memory_mb": 81920}
            for i in range(scale.per_host)
        ]
        resource_store.register_host(db, name, "default", devices, utc_now())


def read_and_plan(db: Database, settings: Settings):
    """The read + plan part of `RunService.admit`, without the lease writes."""
    assert lease_store.inventory_declared(db)
    now = utc_now()
    requests = admission.requests_of(lease_store.waiting_runs(db))
    devices = admission.devices_of(lease_store.devices(db), now, timedelta(seconds=settings.host_offline_seconds))
    grants, waiting = admission.plan(requests, devices)
    return requests, devices, grants, waiting


def check_plan(requests, devices, grants, waiting) -> None:
    """Grants go to waiting runs, on free online devices of one host, as many as asked, none twice; every other
    request has a place."""
    by_id = {device.id: device for device in devices}
    asked = {request.run_id: request for request in requests}
    taken: set[str] = set()
    for grant in grants:
        request = asked[grant.run_id]
        chosen = [by_id[device_id] for device_id in grant.device_ids]
        if len(chosen) != request.count or {d.host for d in chosen} != {grant.host}:
            raise AssertionError(f"grant {grant} does not match request {request}")
        if any(d.holder or not d.online or request.gpu_type not in (None, d.gpu_type) for d in chosen):
            raise AssertionError(f"grant {grant} takes a busy, offline or wrong-type device")
        if taken & set(grant.device_ids):
            raise AssertionError(f"grant {grant} takes a device granted in the same cycle")
        taken |= set(grant.device_ids)
    granted = {grant.run_id for grant in grants}
    if granted & set(waiting) or granted | set(waiting) != set(asked):
        raise AssertionError("every request must be either granted or waiting, not both")


def leases_now(db: Database) -> dict[str, str]:
    return dict(db.fetch_all("SELECT device_id, run_id FROM gpu_leases"))


def free_host(service: RunService, host: str) -> int:
    """End every run holding a device of `host` (they release on 已完成); the devices freed."""
    holders = {row["holder"] for row in lease_store.devices(service.db) if row["host"] == host and row["holder"]}
    for run_id in holders:
        run = run_store.get(service.db, run_id)
        if run["status"] == RunStatus.QUEUED.value:
            service.move(run, RunStatus.RUNNING)
        service.move(run_store.get(service.db, run_id), RunStatus.COMPLETED)
    return sum(1 for row in lease_store.devices(service.db) if row["host"] == host and row["holder"] is None)


def admission_cycle(tmp: Path, scale: Scale) -> None:
    home = tmp / "home-11"
    holder_ids, waiting_ids = fill_queue(home, scale)
    settings = Settings(home=home, launcher="none")
    db = Database(settings.db_path)
    try:
        service = RunService(db, NoopLauncher(), settings)
        register_hosts(db, scale)
        service.admit()  # the holders take every device
        leased = leases_now(db)
        if sorted(set(leased.values())) != sorted(holder_ids):
            raise AssertionError(f"{len(set(leased.values()))} runs leased, expected the {len(holder_ids)} holders")
        for run_id in holder_ids:
            service.move(run_store.get(db, run_id), RunStatus.RUNNING)
        # Free `free` more devices on different hosts without admitting, so each cycle below plans some grants.
        hosts_of = {row["holder"]: row["host"] for row in lease_store.devices(db) if row["holder"]}
        freed: dict[str, str] = {}
        for run_id in reversed(holder_ids):
            if len(freed) < scale.free and hosts_of[run_id] not in freed:
                freed[hosts_of[run_id]] = run_id
                service.move(run_store.get(db, run_id), RunStatus.COMPLETED)

        requests, devices, grants, waiting = read_and_plan(db, settings)
        check_plan(requests, devices, grants, waiting)
        if len(requests) != len(waiting_ids) or not grants:
            raise AssertionError(f"{len(requests)} requests and {len(grants)} grants planned, expected {scale.waiting}")
        busy = sum(1 for device in devices if device.holder)
        print(
            f"11 queue: {len(requests):,} waiting GPU runs, {len(devices)} devices on {scale.hosts} hosts, {busy} busy;"
            f" each cycle plans {len(grants)} grant(s) ({sum(len(g.device_ids) for g in grants)} devices)",
            flush=True,
        )
        samples = []
        for _ in range(max(scale.cycles, 5) * 5):
            started = time.perf_counter()
            admission.plan(requests, devices)
            samples.append((time.perf_counter() - started) * 1000)
        figure(
            f"11a plan(): {len(requests):,} requests, {len(devices)} devices ({busy} busy)",
            samples,
            "≤ 50 ms",
            unit="ms",
        )
        samples = []
        for _ in range(scale.cycles):
            started = time.perf_counter()
            again = read_and_plan(db, settings)
            samples.append((time.perf_counter() - started) * 1000)
            if [g.device_ids for g in again[2]] != [g.device_ids for g in grants] or again[3] != waiting:
                raise AssertionError("the same store planned differently")
        figure("11b admission cycle read + plan on the DuckDB file (no writes)", samples, "≤ 50 ms", unit="ms")
        granting_cycles(service, settings, scale)
    finally:
        db.close()


def granting_cycles(service: RunService, settings: Settings, scale: Scale) -> None:
    """Free one whole host, then time a cycle of the admission loop, `RunService.admit(background=True)`: read, plan,
    the lease transaction; the hand-overs (to NoopLauncher) go to worker threads after it."""
    samples, granted_runs, granted_devices = [], [], []
    for host in range(scale.grant_cycles):
        free_host(service, f"gpu-{host:02d}")
        requests, devices, grants, waiting = read_and_plan(service.db, settings)  # what admit() must do
        check_plan(requests, devices, grants, waiting)
        before = leases_now(service.db)
        started = time.perf_counter()
        service.admit(background=True)
        samples.append((time.perf_counter() - started) * 1000)
        after = leases_now(service.db)
        expected = dict(before)
        for grant in grants:
            expected.update({device_id: grant.run_id for device_id in grant.device_ids})
        if after != expected:
            raise AssertionError(f"leases after admit differ from the plan: {len(after)} vs {len(expected)}")
        for grant in grants:
            run = run_store.get(service.db, grant.run_id)
            if run["devices"] != grant.device_ids or run["gpu_host"] != grant.host or run["leased_at"] is None:
                raise AssertionError(f"run {grant.run_id} records {run['devices']}, leased {grant.device_ids}")
        if service.waiting != waiting:
            raise AssertionError("admit() left a different queue than planned")
        granted_runs.append(len(grants))
        granted_devices.append(sum(len(g.device_ids) for g in grants))
    figure("11c admission cycle that grants (one host freed), with lease writes", samples, "≤ 50 ms", unit="ms")
    print(
        f"11c granted {granted_runs} runs / {granted_devices} devices per cycle; leases match the plan exactly",
        flush=True,
    )


# 12, 13 — through `ltm up` with LTM_GPUS


def inventory(api: Client, count: int) -> list[str]:
    def devices():
        found = [d.id for h in api.list_resources().hosts for d in h.devices]
        return found if len(found) == count else None

    return wait_until(devices, timeout=60, message=f"the host agent to register {count} GPUs")


def time_to_running(api: Client, project_id: str, resources: dict) -> tuple[float, float]:
    """(seconds to 运行中, seconds the create request took)."""
    started = time.perf_counter()
    run = api.create_run(project_id, model="m", dataset="d", hyperparameters=LONG, resources=resources)
    answered = time.perf_counter() - started
    wait_until(lambda: api.get_run(project_id, run.id).status != RunStatus.QUEUED, timeout=60, interval=0.02)
    elapsed = time.perf_counter() - started
    running = api.get_run(project_id, run.id)
    if running.status != RunStatus.RUNNING:
        raise AssertionError(f"run {run.id} went {running.status.value}: {running.message}")
    if resources and (len(running.devices) != 1 or running.leased_at is None):
        raise AssertionError(f"GPU run {run.id} runs without a lease: {running.devices}")
    if not resources and running.devices:
        raise AssertionError(f"run {run.id} without GPUs leased {running.devices}")
    wait_until(lambda: api.get_run(project_id, run.id).current_step >= 3, timeout=30, interval=0.05)
    cancelled = api.cancel_run(project_id, run.id)
    if cancelled.status != RunStatus.CANCELLED:
        raise AssertionError(f"run {run.id} cancelled as {cancelled.status.value}")
    return elapsed, answered


def gpu_to_running(api: Client, samples: int) -> None:
    project = api.create_project(name="bench-gpus-to-running", owner="bench")
    gpu = {"gpu_type": HOST_MODEL, "gpu_count": 1}
    time_to_running(api, project.id, {})  # warm-up: the worker's first flow imports everything
    time_to_running(api, project.id, gpu)
    with_gpu, without = [], []
    for _ in range(samples):
        with_gpu.append(time_to_running(api, project.id, gpu))
        without.append(time_to_running(api, project.id, {}))
    figure("12 create 1×A100 run → 运行中 on a free GPU (warm worker)", [s[0] for s in with_gpu], "≤ 2.84 s (6a)")
    figure("12 …the same without GPUs, same system, interleaved", [s[0] for s in without], "≤ 5 s (6a)")
    figure("12 POST …/runs answered, 1×A100 (admission cycle inline)", [s[1] * 1000 for s in with_gpu], "—", "ms")
    figure("12 POST …/runs answered, without GPUs", [s[1] * 1000 for s in without], "—", "ms")


@dataclass
class Lease:
    run_id: str
    device_id: str
    leased: datetime
    released: datetime


def check_order(run: Run, device_ids: list[str]) -> None:
    """Raise unless the run leased one declared device, and was created, leased, started, finished and released in
    that order."""
    if len(run.devices) != 1 or run.devices[0] not in device_ids:
        raise AssertionError(f"run {run.id} leased {run.devices}, not one of {device_ids}")
    stamps = (run.created_at, run.leased_at, run.started_at, run.finished_at, run.released_at)
    if None in stamps or list(stamps) != sorted(stamps):
        raise AssertionError(
            f"run {run.id}: created {run.created_at}, leased {run.leased_at}, started {run.started_at}, "
            f"finished {run.finished_at}, released {run.released_at}: missing or not in that order"
        )


def check_leases(runs: list[Run], device_ids: list[str]) -> dict:
    """Raise unless every run's lease is in order, no two leases overlap on a device by more than STAMP_SKEW, and
    never more than len(device_ids) devices were held. Overlaps within STAMP_SKEW are counted and then clipped:
    leases are stamped inside their transaction, after the release that freed the device, so none is expected;
    the tolerance stays so that a regression is printed with its size."""
    for run in runs:
        check_order(run, device_ids)
    leases = sorted(
        (Lease(r.id, r.devices[0], r.leased_at, r.released_at) for r in runs), key=lambda x: (x.device_id, x.leased)
    )
    overlaps, gaps = [], []
    for previous, following in zip(leases, leases[1:]):
        if previous.device_id != following.device_id:
            continue
        seconds = (following.leased - previous.released).total_seconds()
        if -seconds > STAMP_SKEW:
            raise AssertionError(
                f"{following.device_id}: {following.run_id} leased at {following.leased}, "
                f"{-seconds:.3f} s before {previous.run_id} released it at {previous.released}"
            )
        if seconds < 0:
            overlaps.append(-seconds)
            following.leased = previous.released
        else:
            gaps.append((seconds, previous, following))
    events = sorted([(x.leased, 1) for x in leases] + [(x.released, -1) for x in leases])
    held = most = 0
    for _, change in events:  # a release at the same instant as a lease sorts first
        held += change
        most = max(most, held)
    if most > len(device_ids):
        raise AssertionError(f"{most} runs held devices at once, only {len(device_ids)} declared")
    device_seconds = sum((x.released - x.leased).total_seconds() for x in leases)
    span = (max(x.released for x in leases) - min(x.leased for x in leases)).total_seconds()
    if device_seconds > len(device_ids) * span + 1e-6:
        raise AssertionError(f"{device_seconds:.1f} device-seconds in {span:.1f} s on {len(device_ids)} devices")
    return {"device_seconds": device_seconds, "span": span, "gaps": gaps, "overlaps": overlaps, "most": most}


def many_short_runs(api: Client, count: int, device_ids: list[str], prefect_api_url: str) -> None:
    project = api.create_project(name="bench-gpus-short", owner="bench")
    started = time.perf_counter()
    created = [
        api.create_run(
            project.id,
            model="m",
            dataset="d",
            hyperparameters={**SHORT, "seed": index},
            resources={"gpu_type": HOST_MODEL, "gpu_count": 1},
        )
        for index in range(count)
    ]
    print(f"13 submitted {count} runs in {time.perf_counter() - started:.1f} s", flush=True)
    wait_until(
        lambda: all(r.status.is_terminal for r in api.list_runs(project.id)),
        timeout=60 + 10 * count,
        interval=0.5,
        message=f"{count} short GPU runs to end",
    )
    wall = time.perf_counter() - started
    runs = [api.get_run(project.id, run.id) for run in created]
    failed = [f"{run.id} {run.status.value}: {run.message}" for run in runs if run.status != RunStatus.COMPLETED]
    if failed:
        raise AssertionError(f"{len(failed)} of {count} runs did not end 已完成: " + "; ".join(failed[:5]))
    checked = check_leases(runs, device_ids)
    device_seconds, span, gaps, overlaps = (checked[k] for k in ("device_seconds", "span", "gaps", "overlaps"))
    resources = api.list_resources()
    held = [d.id for h in resources.hosts for d in h.devices if d.run_id or d.busy]
    if held or resources.queue:
        raise AssertionError(f"after the last run: devices still leased {held}, {len(resources.queue)} still queued")
    gpus = len(device_ids)
    figure(f"13 {count} short 1×A100 runs through {gpus} GPUs, submitted → all 已完成", [wall], "all 已完成")
    print(
        f"13 {count / wall * 60:.1f} runs/minute; device-seconds {device_seconds:.1f} / ({gpus} × wall {wall:.1f} s) "
        f"= {device_seconds / (gpus * wall):.1%} ({device_seconds / (gpus * span):.1%} of first lease → last "
        f"release, {span:.1f} s); at most {checked['most']} held at once, none left",
        flush=True,
    )
    print(
        f"13 leases overlapping on a device: {len(overlaps)}"
        + (f", by at most {max(overlaps) * 1000:.1f} ms (leased_at stamped at cycle start)" if overlaps else ""),
        flush=True,
    )
    figure(
        "13 lease held per run (leased → released)",
        [(r.released_at - r.leased_at).total_seconds() for r in runs],
        "—",
    )
    if gaps:
        figure("13 device idle between one run's release and the next lease", [g[0] for g in gaps], "—")
    for seconds, previous, following in sorted(gaps, key=lambda g: g[0])[-3:]:
        if seconds > 1:  # admission runs as a run ends, and every LTM_RECONCILE_SECONDS=1 at the latest
            print(
                f"13 idle {seconds:.1f} s on {previous.device_id} while runs waited: {previous.run_id} released "
                f"{previous.released:%H:%M:%S.%f}, {following.run_id} leased {following.leased:%H:%M:%S.%f}",
                flush=True,
            )
    waits = [(r.leased_at - r.created_at).total_seconds() for r in runs]
    print(f"13 queue wait per run: median {statistics.median(waits):.1f} s, max {max(waits):.1f} s", flush=True)
    hand_over_times(runs, prefect_api_url)


def hand_over_times(runs: list[Run], prefect_api_url: str) -> None:
    """From a run's lease (stamped when its admission cycle began) to the creation of its Prefect flow run."""
    with httpx.Client(base_url=prefect_api_url, timeout=30) as prefect:
        seconds = [
            (
                datetime.fromisoformat(prefect.get(f"/flow_runs/{run.flow_run_id}").json()["created"]) - run.leased_at
            ).total_seconds()
            for run in runs
        ]
    cycles = len({run.leased_at for run in runs})
    figure(f"13 leased → Prefect flow run created ({cycles} granting cycles)", seconds, "—")


def through_ltm_up(tmp: Path, scale: Scale, wanted, keep_logs: Path | None) -> None:
    system = LtmSystem(tmp / "home-up", LTM_GPUS=f"{HOST_MODEL}:{scale.gpus}").start()
    try:
        with Client(system.api_url, timeout=60) as api:
            device_ids = inventory(api, scale.gpus)
            if wanted("12"):
                gpu_to_running(api, scale.to_running)
            if wanted("13"):
                many_short_runs(api, scale.short_runs, device_ids, system.prefect_api_url)
    except BaseException:
        print(system.logs()[-6000:], flush=True)
        raise
    finally:
        system.stop()
        if keep_logs:
            shutil.copytree(system.home / "logs", keep_logs, dirs_exist_ok=True)


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs")
    parser.add_argument("--only", choices=["11", "12", "13"], help="run only this figure")
    parser.add_argument("--short-runs", type=int, help="13: runs to put through the GPUs")
    parser.add_argument("--keep-logs", type=Path, help="copy the `ltm up` service logs (12, 13) into this folder")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    if args.short_runs:
        scale = replace(scale, short_runs=args.short_runs)

    def wanted(number: str) -> bool:
        return args.only in (None, number)

    started = time.perf_counter()
    print(f"load average {load()} at start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if wanted("11"):
            admission_cycle(Path(tmp), scale)
        if wanted("12") or wanted("13"):
            through_ltm_up(Path(tmp), scale, wanted, args.keep_logs)
    print(f"bench_gpus took {time.perf_counter() - started:.0f} s; load average {load()} at the end", flush=True)


if __name__ == "__main__":
    main()
