"""GPU admission: which waiting runs get which devices now, and why the others wait.

Each GPU type is one queue, ordered by priority (higher first), then creation time. A queue never admits past
its head: while the head waits for devices, the runs behind it of the same type wait too, even if they would
fit. That reserves the devices the head needs as they free up, so a stream of small runs cannot starve a large
one. Runs of other types, and runs without GPUs, are not held by it.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from ltm import gpus

ANY_TYPE = "任意型号"


@dataclass(frozen=True)
class Request:
    run_id: str
    name: str
    gpu_type: str | None  # normalised as gpus.gpu_type_of; None takes any one type
    count: int

    @property
    def queue(self) -> str:
        return self.gpu_type or ANY_TYPE

    @property
    def label(self) -> str:
        return f"{self.count} × {self.queue}"


@dataclass(frozen=True)
class Device:
    id: str
    host: str
    index: int
    gpu_type: str
    online: bool
    holder: str | None


@dataclass(frozen=True)
class Grant:
    run_id: str
    host: str
    device_ids: list[str]


@dataclass(frozen=True)
class Waiting:
    position: int
    reason: str


def requests_of(runs: list[dict]) -> list[Request]:
    """The GPU requests among waiting runs, in the order given; runs without GPUs are not admitted here."""
    requests = []
    for run in runs:
        gpu_type, count = gpus.requested(run["resources"])
        if count > 0:
            requests.append(Request(run["id"], run["name"], gpu_type, count))
    return requests


def devices_of(rows: list[dict], now: datetime, offline_after: timedelta | None) -> list[Device]:
    """Devices as admission sees them; with `offline_after` None every host counts as online."""
    return [
        Device(
            id=row["id"],
            host=row["host"],
            index=row["index"],
            gpu_type=gpus.gpu_type_of(row["model"]),
            online=offline_after is None or row["last_seen_at"] >= now - offline_after,
            holder=row["holder"],
        )
        for row in rows
    ]


def plan(requests: list[Request], devices: list[Device]) -> tuple[list[Grant], dict[str, Waiting]]:
    """Grants for the runs that can start now, in order, and each other run's place and reason."""
    free: dict[tuple[str, str], list[Device]] = defaultdict(list)  # (host, type) -> free online devices by index
    for device in sorted(devices, key=lambda d: (d.host, d.index)):
        if device.online and device.holder is None:
            free[(device.host, device.gpu_type)].append(device)
    grants: list[Grant] = []
    waiting: dict[str, Waiting] = {}
    heads: dict[str, Request] = {}
    positions: Counter[str] = Counter()
    for request in requests:
        head = heads.get(request.queue)
        group = None if head else _best_fit(request, free)
        if group is not None:
            taken, free[group] = free[group][: request.count], free[group][request.count :]
            grants.append(Grant(request.run_id, group[0], [device.id for device in taken]))
            continue
        positions[request.queue] += 1
        if head is None:
            heads[request.queue] = request
            reason = _why_head_waits(request, devices, free)
        else:
            reason = f"等待 {request.label}：排在 {head.name}（{head.label}）之后，同型号队列按顺序分配，不越过队首"
        waiting[request.run_id] = Waiting(positions[request.queue], reason)
    return grants, waiting


def _matches(request: Request, gpu_type: str) -> bool:
    return request.gpu_type is None or request.gpu_type == gpu_type


def _best_fit(request: Request, free: dict[tuple[str, str], list[Device]]) -> tuple[str, str] | None:
    """The host (and type) with the fewest free devices that still fit, so large holes stay whole."""
    fitting = [
        (len(devices), group)
        for group, devices in free.items()
        if _matches(request, group[1]) and len(devices) >= request.count
    ]
    return min(fitting)[1] if fitting else None


def _why_head_waits(request: Request, devices: list[Device], free: dict[tuple[str, str], list[Device]]) -> str:
    online = [d for d in devices if d.online and _matches(request, d.gpu_type)]
    offline = [d for d in devices if not d.online and _matches(request, d.gpu_type)]
    if not online:
        return f"等待 {request.label}：有该型号的主机都已离线（离线 {len(offline)} 块），主机恢复上报后再分配"
    idle = sum(len(group) for key, group in free.items() if _matches(request, key[1]))
    reason = f"等待 {request.label}：空闲 {idle} / 共 {len(online)}"
    if idle >= request.count:
        largest = max(len(group) for key, group in free.items() if _matches(request, key[1]))
        reason += f"（没有一台主机同时空闲 {request.count} 块，单台最多空闲 {largest} 块）"
    return reason


def refusal(gpu_type: str | None, count: int, devices: list[Device]) -> tuple[str, str] | None:
    """(field, Chinese message) when no registered host could ever hold the request, online or not."""
    request = Request("", "", gpu_type, count)
    per_host: Counter[tuple[str, str]] = Counter((d.host, d.gpu_type) for d in devices)
    types = Counter(d.gpu_type for d in devices)
    existing = "、".join(f"{t}（共 {n} 块）" for t, n in sorted(types.items()))
    if not any(_matches(request, t) for t in types):
        return "resources.gpu_type", f"resources.gpu_type：没有登记的主机有 {gpu_type}；现有：{existing}"
    largest = max(n for (_, t), n in per_host.items() if _matches(request, t))
    if count > largest:
        return (
            "resources.gpu_count",
            f"resources.gpu_count：{count} 块 {request.queue} 超过任何一台主机的数量（单台最多 {largest} 块）；"
            f"一个运行的 GPU 必须在同一台主机上。现有：{existing}",
        )
    return None


@dataclass(frozen=True)
class Holder:
    """A run holding devices, as preemption weighs it."""

    run_id: str
    priority: int
    protected: bool  # preempted (or requeued after a preemption) within the grace time
    leased_at: datetime


def victims(request: Request, priority: int, devices: list[Device], holders: dict[str, Holder]) -> list[str] | None:
    """The fewest lower-priority, unprotected runs on one host whose devices, with that host's free ones, hold
    `request`: lowest priority first, then the most recently leased (the least work to redo). None when no host
    has enough."""
    best: tuple[tuple, list[str]] | None = None
    for host in sorted({d.host for d in devices if d.online}):
        matching = [d for d in devices if d.host == host and d.online and _matches(request, d.gpu_type)]
        free = sum(d.holder is None for d in matching)
        held = Counter(d.holder for d in matching if d.holder is not None)
        candidates = sorted(
            (holders[run] for run in held if run in holders and holders[run].priority < priority),
            key=lambda h: (h.priority, -h.leased_at.timestamp()),
        )
        chosen, total = [], free
        for holder in candidates:
            if total >= request.count:
                break
            if holder.protected:
                continue
            chosen.append(holder.run_id)
            total += held[holder.run_id]
        if total >= request.count and chosen:
            rank = (len(chosen), sum(holders[r].priority for r in chosen), host)
            if best is None or rank < best[0]:
                best = (rank, chosen)
    return best[1] if best else None
