"""Resume fidelity: a resumed run compared with its parent at every step both trained after the checkpoint.

Points are compared for exact equality, with no tolerance. A deterministic trainer restored from a checkpoint
repeats its parent's floating-point operations in the same order, and a point reaches the store without loss
(JSON floats round-trip exactly, Arrow doubles are copied bit for bit), so a faithful resume gives bit-identical
values. Any difference at all means the run did not continue the same computation: other hyperparameters, another
data order, other library kernels, a nondeterministic GPU reduction. A tolerance would have to be chosen per metric
and would hide exactly the small early drift that compounds later; the first difference is shown with its size
instead, so a reader can tell a 1e-7 kernel difference from a changed learning rate.

GPU telemetry (`gpu/…`) and throughput (`…_per_second`) series are not compared: they measure the machine and the
clock, not the model, and differ between any two runs.
"""

import json
from typing import Any

from ltm.models import FIDELITY_STATUSES, RunStatus
from ltm.store import Database
from ltm.store import fidelity as fidelity_store
from ltm.store import runs as run_store

IDENTICAL, DIFFERENT, NO_OVERLAP, NOT_RESUMED, PARENT_DELETED = FIDELITY_STATUSES
MACHINE_PREFIXES = ("gpu/",)
MACHINE_SUFFIXES = ("_per_second",)
PACKAGES = "packages"
PACKAGES_SHOWN = 3
ENVIRONMENT_ORDER = ("python", "ltm", "torch", "cuda")
NOTHING = "无"


def verdict(db: Database, run: dict) -> dict:
    """The ResumeFidelity of `run`: so far, while it is still training."""
    base = {
        "run_id": run["id"],
        "parent_run_id": run["parent_run_id"],
        "resumed_from": run["resumed_from"],
        "start_step": run["start_step"],
        "run_active": RunStatus(run["status"]).is_active,
    }
    if run["parent_run_id"] is None:
        return {**base, "status": NOT_RESUMED, "summary": "不是从检查点恢复的运行，没有原运行可比较"}
    parent = run_store.get(db, run["parent_run_id"])
    if parent is None:
        return {**base, "status": PARENT_DELETED, "summary": f"原运行 {run['parent_run_id']} 已删除，无法比较"}
    compared = _compare(db, parent, run)
    reason = compared.pop("reason", None)
    environment = _environment(parent["environment"], run["environment"])
    summary = _summary(compared, environment, base["run_active"], reason)
    return {**base, **compared, **environment, "summary": summary}


# Metrics


def measures_machine(name: str) -> bool:
    return name.startswith(MACHINE_PREFIXES) or name.endswith(MACHINE_SUFFIXES)


def _compare(db: Database, parent: dict, run: dict) -> dict:
    start = run["start_step"]
    ends = fidelity_store.series_ends(db, parent["id"], run["id"], start)
    parent_ends, run_ends = ends.get(parent["id"], {}), ends.get(run["id"], {})
    shared = sorted(set(parent_ends) & set(run_ends))
    names = [name for name in shared if not measures_machine(name)]
    skipped = [name for name in shared if measures_machine(name)]
    up_to = min(max(parent_ends.values(), default=start), max(run_ends.values(), default=start))
    series = fidelity_store.compare(db, parent["id"], run["id"], names, start, up_to)
    if not series:
        return {"status": NO_OVERLAP, "metrics_skipped": skipped, "reason": _no_overlap(start, parent_ends, run_ends)}
    differences = sorted((_difference(s) for s in series if s.differs_at is not None), key=_earliest)
    return {
        "status": DIFFERENT if differences else IDENTICAL,
        "first_step": min(s.first_step for s in series),
        "last_step": max(s.last_step for s in series),
        "points_compared": sum(s.points for s in series),
        "metrics_compared": [s.name for s in series],
        "metrics_skipped": skipped,
        "differences": differences,
        "first_difference": differences[0] if differences else None,
    }


def _no_overlap(start: int, parent_ends: dict, run_ends: dict) -> str:
    if not parent_ends:
        return f"原运行在第 {start} 步的检查点之后没有继续训练，没有可比较的步"
    if not run_ends:
        return f"运行还没有第 {start} 步之后的指标，暂无可比较的步"
    return f"第 {start} 步之后与原运行没有同一步的共同指标，无法比较"


def _difference(series: fidelity_store.SharedSeries) -> dict:
    parent, run = series.parent_value, series.run_value
    return {
        "metric": series.name,
        "step": series.differs_at,
        "parent_value": parent,
        "run_value": run,
        "absolute_difference": run - parent,
        "relative_difference": (run - parent) / abs(parent) if parent else None,
    }


def _earliest(difference: dict) -> tuple:
    return difference["step"], difference["metric"]


# Environment


def _environment(parent: dict | None, run: dict | None) -> dict:
    if parent is None or run is None:
        return {"environment_compared": False, "environment_differences": []}
    return {"environment_compared": True, "environment_differences": environment_differences(parent, run)}


def environment_differences(parent: dict, run: dict) -> list[dict]:
    """Each fact that differs (nested objects by dotted key), known versions first; the installed packages as one
    entry that counts the packages whose versions differ and names the first few."""
    parent_facts, run_facts = _facts(parent), _facts(run)
    keys = sorted(set(parent_facts) | set(run_facts), key=_fact_order)
    found = [
        {"key": key, "parent": parent_facts.get(key), "run": run_facts.get(key)}
        for key in keys
        if parent_facts.get(key) != run_facts.get(key)
    ]
    differences = [{**d, "summary": f"{d['key']} {_shown(d['parent'])} → {_shown(d['run'])}"} for d in found]
    packages = _packages(parent.get(PACKAGES), run.get(PACKAGES))
    return differences + ([packages] if packages else [])


def _facts(environment: dict, prefix: str = "") -> dict[str, Any]:
    facts = {}
    for key, value in environment.items():
        if not prefix and key == PACKAGES:
            continue
        if isinstance(value, dict):
            facts.update(_facts(value, f"{prefix}{key}."))
        else:
            facts[f"{prefix}{key}"] = value
    return facts


def _fact_order(key: str) -> tuple:
    head = key.split(".")[0]
    if head in ENVIRONMENT_ORDER:
        return 0, ENVIRONMENT_ORDER.index(head), key
    return (1 if "device" in key else 2), 0, key


def _packages(parent: Any, run: Any) -> dict | None:
    parent_versions, run_versions = _versions(parent), _versions(run)
    if parent_versions is None or run_versions is None:
        if parent == run:
            return None
        return {"key": PACKAGES, "parent": parent, "run": run, "summary": "已安装的包不同"}
    changed = sorted(
        name for name in set(parent_versions) | set(run_versions) if parent_versions.get(name) != run_versions.get(name)
    )
    if not changed:
        return None
    shown = changed[:PACKAGES_SHOWN]
    listed = "、".join(f"{n} {_shown(parent_versions.get(n))} → {_shown(run_versions.get(n))}" for n in shown)
    more = "等" if len(changed) > len(shown) else ""
    return {
        "key": PACKAGES,
        "parent": {name: parent_versions.get(name) for name in shown},
        "run": {name: run_versions.get(name) for name in shown},
        "summary": f"{len(changed)} 个包版本不同：{listed}{more}",
    }


def _versions(packages: Any) -> dict[str, str | None] | None:
    """Package name → version from a {name: version} object or a list of "name==version" texts or {name, version}
    objects; None for anything else (compared as it is)."""
    if isinstance(packages, dict):
        return {str(name): None if version is None else str(version) for name, version in packages.items()}
    if not isinstance(packages, list):
        return None
    versions: dict[str, str | None] = {}
    for entry in packages:
        if isinstance(entry, str):
            name, _, version = entry.partition("==")
            versions[name.strip()] = version.strip() or None
        elif isinstance(entry, dict) and "name" in entry:
            versions[str(entry["name"])] = None if entry.get("version") is None else str(entry["version"])
        else:
            return None
    return versions


def _shown(value: Any) -> str:
    if value is None:
        return NOTHING
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# Summary


def _summary(compared: dict, environment: dict, active: bool, reason: str | None) -> str:
    status = compared["status"]
    if status == IDENTICAL:
        text = f"与原运行逐步一致（{_steps(compared['first_step'], compared['last_step'])}）"
    elif status == DIFFERENT:
        text = _first_difference(compared["first_difference"])
    else:
        text = reason
    changed = environment["environment_differences"]
    if changed:
        text += "；环境不同：" + "，".join(d["summary"] for d in changed)
    if active:
        text += "；运行仍在进行，结论只针对至今已有的步"
    return text


def _steps(first: int, last: int) -> str:
    return f"第 {first} 步" if first == last else f"第 {first}–{last} 步"


def _first_difference(difference: dict) -> str:
    parent, run = _distinct(difference["parent_value"], difference["run_value"])
    return f"第 {difference['step']} 步起与原运行不同：{difference['metric']} {parent} → {run}（{_change(difference)}）"


def _distinct(parent: float, run: float) -> tuple[str, str]:
    """The two values with as few significant digits (at least 4) as tell them apart."""
    for digits in range(4, 18):
        shown = f"{parent:.{digits}g}", f"{run:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return repr(parent), repr(run)


def _change(difference: dict) -> str:
    relative = difference["relative_difference"]
    if relative is None:
        return f"{difference['absolute_difference']:+.3g}"
    percent = relative * 100
    return f"{percent:+.0f}%" if abs(percent) >= 10 else f"{percent:+.2g}%"
