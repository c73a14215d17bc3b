"""Utilisation and memory of each GPU device leased to a run, as the metric series `gpu/<i>/utilization` (0–1)
and `gpu/<i>/memory_mb`, where `<i>` is the device's position in `run.devices` (its CUDA index in the flow).

Real devices (`GPU-…`/`MIG-…` UUIDs) are read through NVML by UUID: NVML ignores CUDA_VISIBLE_DEVICES, so its
indexes are not the flow's. A value NVML cannot give is left out, never invented. Simulated devices
(`sim-<host>-<model>-<index>`, declared with LTM_GPUS) follow the trainer's own utilisation figure, with a stable
offset per device and a little jitter, so CPU machines show believable charts.
"""

import hashlib
import random
from dataclasses import dataclass

from ltm import gpus
from ltm.gpus import KNOWN_MEMORY_MB

REAL_PREFIXES = ("GPU-", "MIG-")
SIM_PREFIX = "sim-"
DEFAULT_MEMORY_MB = 16384


@dataclass(frozen=True)
class DeviceSample:
    device: str
    utilization: float | None  # fraction 0–1
    memory_mb: float | None


@dataclass(frozen=True)
class Reading:
    devices: tuple[DeviceSample, ...]

    @property
    def utilization(self) -> float | None:
        """Mean utilisation over the devices that gave one; None without any."""
        values = [sample.utilization for sample in self.devices if sample.utilization is not None]
        return sum(values) / len(values) if values else None

    @property
    def metrics(self) -> dict[str, float]:
        series = {}
        for index, sample in enumerate(self.devices):
            if sample.utilization is not None:
                series[f"gpu/{index}/utilization"] = sample.utilization
            if sample.memory_mb is not None:
                series[f"gpu/{index}/memory_mb"] = sample.memory_mb
        return series


class DeviceTelemetry:
    """Reads the run's devices, in `run.devices` order; `seed` makes the simulated values repeatable."""

    def __init__(self, devices: list[str], seed: object = 0) -> None:
        self.devices = list(devices)
        self.seed = seed
        self._handles: dict[str, object] = {}

    def read(self, step: int, trainer_utilization: float | None) -> Reading:
        return Reading(
            tuple(self._sample(index, device, step, trainer_utilization) for index, device in enumerate(self.devices))
        )

    def _sample(self, index: int, device: str, step: int, trainer_utilization: float | None) -> DeviceSample:
        if device.startswith(REAL_PREFIXES):
            return _read_nvml(device, self._handles)
        if device.startswith(SIM_PREFIX):
            return _simulated(device, f"{self.seed}:{step}:{index}", trainer_utilization or 0.0)
        return DeviceSample(device, None, None)


def _simulated(device: str, draw: str, trainer_utilization: float) -> DeviceSample:
    offset = _stable_fraction(device) * 2 - 1  # -1…1, the same for this device in every run
    rng = random.Random(draw)
    utilization = min(1.0, max(0.0, trainer_utilization + 0.04 * offset + rng.gauss(0.0, 0.015)))
    fraction = 0.72 + 0.08 * offset + rng.gauss(0.0, 0.004)
    return DeviceSample(device, utilization, float(round(_memory_mb(device) * fraction)))


def _stable_fraction(device: str) -> float:
    digest = hashlib.blake2b(device.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _memory_mb(device: str) -> int:
    """Memory of the model named in `sim-<host>-<model>-<index>` (host and model may both contain hyphens)."""
    named = device.rsplit("-", 1)[0].upper()
    for model in sorted(KNOWN_MEMORY_MB, key=len, reverse=True):
        if named.endswith(f"-{model.upper()}"):
            return KNOWN_MEMORY_MB[model]
    return DEFAULT_MEMORY_MB


def _read_nvml(device: str, handles: dict[str, object]) -> DeviceSample:
    nvml = gpus.nvml()
    if nvml is None:
        return DeviceSample(device, None, None)
    try:
        if device not in handles:
            handles[device] = nvml.nvmlDeviceGetHandleByUUID(device)
        handle = handles[device]
    except nvml.NVMLError:
        return DeviceSample(device, None, None)
    utilization = memory_mb = None
    try:
        utilization = nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100
    except nvml.NVMLError:  # MIG instances report no utilisation
        pass
    try:
        memory_mb = nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
    except nvml.NVMLError:
        pass
    return DeviceSample(device, utilization, memory_mb)
