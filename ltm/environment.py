"""What a training process runs on: Python, ltm, torch and CUDA versions, platform, device type and installed packages.

A flow reports it once as its run starts (`RunUpdate.environment`), so a release manifest can say what produced a
checkpoint and a resumed run can be compared with its parent. Describing never imports torch: its version comes from
the installed package's metadata, and CUDA's from `torch.version.cuda` only when torch is already imported.
"""

import json
import platform
import sys
from importlib import metadata

from ltm import gpus
from ltm.gpu_telemetry import REAL_PREFIXES, SIM_PREFIX
from ltm.limits import MAX_JSON_OBJECT_BYTES

CPU = "cpu"
CUDA_RUNTIME_PACKAGES = ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11", "nvidia-cuda-runtime")


def describe(devices: list[str], gpu_type: str | None = None, max_bytes: int = MAX_JSON_OBJECT_BYTES) -> dict:
    """This process's environment for a run leased `devices` (empty: CPU) of `gpu_type`; the package list is left
    out, with a note, when the whole would exceed `max_bytes` of JSON (the API's limit for a JSON object)."""
    models = [device_model(device, gpu_type) for device in devices]
    environment = {
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "ltm": package_version("ltm"),
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "torch": package_version("torch"),
        "cuda": cuda_version(),
        "device_type": ", ".join(dict.fromkeys(models)) if models else CPU,
        "devices": models,
        "packages": installed_packages(),
    }
    return _bounded(environment, max_bytes)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_packages() -> dict[str, str]:
    """Every installed distribution, name → version, sorted by name."""
    found = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(name, distribution.version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def cuda_version() -> str | None:
    """CUDA torch was built with: asked of torch when it is already imported, else read from package metadata."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return getattr(getattr(torch, "version", None), "cuda", None)
    return _cuda_from_metadata(package_version("torch"))


def _cuda_from_metadata(torch_version: str | None) -> str | None:
    if torch_version is None:
        return None
    local = torch_version.partition("+")[2]
    if local.startswith("cu") and local[2:].isdigit() and len(local) > 3:
        digits = local[2:]
        return f"{digits[:-1]}.{digits[-1]}"  # cu121 → 12.1
    if local:
        return None  # +cpu, +rocm…: no CUDA
    for package in CUDA_RUNTIME_PACKAGES:  # PyPI's Linux wheels carry no local label; the runtime is a dependency
        version = package_version(package)
        if version:
            return ".".join(version.split(".")[:2])
    return None


def device_model(device: str, gpu_type: str | None) -> str:
    """The model of a leased device: NVML's name for a real one, the declared model for a simulated one."""
    if device.startswith(REAL_PREFIXES):
        return _nvml_name(device) or gpu_type or "GPU"
    if device.startswith(SIM_PREFIX):
        return _simulated_model(device, gpu_type)
    return gpu_type or device


def _nvml_name(uuid: str) -> str | None:
    nvml = gpus.nvml()
    if nvml is None:
        return None
    try:
        name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByUUID(uuid))
    except nvml.NVMLError:
        return None
    return name.decode() if isinstance(name, bytes) else name


def _simulated_model(device: str, gpu_type: str | None) -> str:
    """The model in `sim-<host>-<model>-<index>` (host and model may both contain hyphens)."""
    named = device.rsplit("-", 1)[0]
    candidates = [gpu_type] if gpu_type else []
    candidates += sorted(gpus.KNOWN_MEMORY_MB, key=len, reverse=True)
    for model in candidates:
        if named.upper().endswith(f"-{model.upper()}"):
            return named[-len(model) :]
    return named.rsplit("-", 1)[-1]


def _bounded(environment: dict, max_bytes: int) -> dict:
    if len(json.dumps(environment, ensure_ascii=False).encode()) <= max_bytes:
        return environment
    count = len(environment["packages"])
    return {
        **environment,
        "packages": None,
        "packages_note": f"已安装的包共 {count} 个，完整列表超过 {max_bytes // 1024} KB 的上限，没有记录",
    }
