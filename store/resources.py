"""GPU hosts and their devices, as each host last reported them."""

from datetime import datetime

from ltm.store.db import Database, from_db_time


def devices_held_elsewhere(db: Database, host: str, device_ids: list[str]) -> dict[str, str]:
    """Those of `device_ids` that another host has registered, with that host's name."""
    if not device_ids:
        return {}
    rows = db.fetch_all(
        "SELECT id, host FROM gpu_devices WHERE list_contains(?, id) AND host <> ? ORDER BY id", [device_ids, host]
    )
    return dict(rows)


def register_host(db: Database, name: str, work_queue: str, devices: list[dict], seen_at: datetime) -> None:
    """Record a host's report in one transaction: its work queue and time seen, and exactly `devices` as its device list
    (devices it no longer reports are removed, not kept)."""
    with db.writing(transaction=True) as cur:
        cur.execute(
            "INSERT INTO gpu_hosts (name, work_queue, registered_at, last_seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET work_queue = excluded.work_queue, last_seen_at = excluded.last_seen_at",
            [name, work_queue, seen_at, seen_at],
        )
        cur.execute(
            "DELETE FROM gpu_devices WHERE host = ? AND NOT list_contains(?, id)",
            [name, [device["id"] for device in devices]],
        )
        for device in devices:
            cur.execute(
                "INSERT INTO gpu_devices (id, host, idx, model, memory_mb) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET host = excluded.host, idx = excluded.idx, model = excluded.model, "
                "memory_mb = excluded.memory_mb",
                [device["id"], name, device["index"], device["model"], device["memory_mb"]],
            )


def list_hosts(db: Database, name: str | None = None) -> list[dict]:
    """Every host (or the one named), by name, each with its devices by index."""
    one = name is not None
    parameters = [name] if one else []
    hosts = db.fetch_dicts(
        "SELECT name, work_queue, registered_at, last_seen_at FROM gpu_hosts "
        f"{'WHERE name = ?' if one else ''} ORDER BY name",
        parameters,
    )
    devices = db.fetch_dicts(
        'SELECT id, host, idx AS "index", model, memory_mb FROM gpu_devices '
        f"{'WHERE host = ?' if one else ''} ORDER BY host, idx",
        parameters,
    )
    by_host: dict[str, list[dict]] = {host["name"]: [] for host in hosts}
    for device in devices:
        by_host.setdefault(device.pop("host"), []).append(device)
    for host in hosts:
        host["registered_at"] = from_db_time(host["registered_at"])
        host["last_seen_at"] = from_db_time(host["last_seen_at"])
        host["devices"] = by_host[host["name"]]
    return hosts


def remove_host(db: Database, name: str) -> bool:
    """Forget a host, its devices and their leases; False when it was not registered."""
    with db.writing(transaction=True) as cur:
        found = cur.execute("SELECT count(*) FROM gpu_hosts WHERE name = ?", [name]).fetchone()[0]
        cur.execute("DELETE FROM gpu_leases WHERE host = ?", [name])
        cur.execute("DELETE FROM gpu_devices WHERE host = ?", [name])
        cur.execute("DELETE FROM gpu_hosts WHERE name = ?", [name])
    return bool(found)
