"""This host's GPU inventory: real devices read through NVML by UUID, or devices declared with LTM_GPUS.

`LTM_GPUS` declares simulated devices where there is no NVML (tests, demos, CPU-only machines) and, when set,
takes precedence over NVML: `A100:4`, `A100:4,H100:2`, or `型号:数量:显存MiB` for a model not in the table below
(`RTX4090:2:24564`). Declared devices get stable ids `sim-<host>-<model>-<index>`, numbered 0… across the
whole list like CUDA indexes, so the same declaration on the same host always names the same devices.
"""

import threading

from ltm.models import GpuDeviceDeclaration
from ltm.settings import Settings

# Memory in MiB as NVML reports it for the common data-centre models (80 GB parts).
KNOWN_MEMORY_MB = {
    "A100": 81920,
    "H100": 81920,
    "H200": 143771,
    "L40S": 46068,
    "A10": 23028,
    "T4": 15360,
    "V100": 32768,
}
FORMAT = "格式为 型号:数量[:显存MiB]，多项用逗号分隔，例如 A100:4 或 A100:4,H100:2"


def _refuse(value: str, problem: str) -> ValueError:
    return ValueError(f"LTM_GPUS={value!r} 无法解析：{problem}。{FORMAT}")


def _count(value: str, text: str, what: str) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        raise _refuse(value, f"{what} {text.strip()!r} 不是整数") from None
    if number < 0:
        raise _refuse(value, f"{what} {number} 不能为负数")
    return number


def _model_and_memory(value: str, parts: list[str]) -> tuple[str, int]:
    name = parts[0].strip()
    if not name or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        raise _refuse(value, f"型号 {name!r} 只能包含字母、数字、点、下划线和连字符")
    if len(parts) == 3:
        memory = _count(value, parts[2], f"{name} 的显存")
        if memory == 0:
            raise _refuse(value, f"{name} 的显存必须大于 0")
        return name, memory
    known = {known.upper(): known for known in KNOWN_MEMORY_MB}
    if name.upper() not in known:
        raise _refuse(
            value,
            f"未知的 GPU 型号 {name}（已知：{'、'.join(KNOWN_MEMORY_MB)}）；其他型号请写明显存，例如 {name}:2:24576",
        )
    canonical = known[name.upper()]
    return canonical, KNOWN_MEMORY_MB[canonical]


def parse_declared(value: str, host: str) -> list[GpuDeviceDeclaration]:
    """The devices `LTM_GPUS=value` declares on `host`; ValueError (Chinese, naming LTM_GPUS) when malformed."""
    devices: list[GpuDeviceDeclaration] = []
    seen: set[str] = set()
    for item in value.split(","):
        if not item.strip():
            raise _refuse(value, "有空的项")
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise _refuse(value, f"{item.strip()!r} 不是 型号:数量 或 型号:数量:显存MiB")
        model, memory = _model_and_memory(value, parts)
        if model.upper() in seen:
            raise _refuse(value, f"型号 {model} 出现了不止一次")
        seen.add(model.upper())
        for _ in range(_count(value, parts[1], f"{model} 的数量")):
            index = len(devices)
            devices.append(
                GpuDeviceDeclaration(id=f"sim-{host}-{model}-{index}", index=index, model=model, memory_mb=memory)
            )
    return devices


_nvml = None
_nvml_lock = threading.Lock()


def nvml():
    """pynvml with NVML started, once per process on first use; None where nvidia-ml-py or NVML is missing."""
    global _nvml
    with _nvml_lock:
        if _nvml is None:
            _nvml = False
            try:
                import pynvml
            except ImportError:
                return None
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError:
                return None
            _nvml = pynvml
        return _nvml or None


def read_nvml() -> list[GpuDeviceDeclaration] | None:
    """The real devices, by UUID, through NVML; None where nvidia-ml-py is missing or NVML does not start."""
    pynvml = nvml()
    if pynvml is None:
        return None
    devices = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        devices.append(
            GpuDeviceDeclaration(
                id=uuid.decode() if isinstance(uuid, bytes) else uuid,
                index=index,
                model=name.decode() if isinstance(name, bytes) else name,
                memory_mb=pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
            )
        )
    return devices


def inventory(settings: Settings) -> list[GpuDeviceDeclaration]:
    """This host's devices: those LTM_GPUS declares when it is set, else NVML's, else none."""
    if settings.gpus is not None and settings.gpus.strip():
        return parse_declared(settings.gpus, settings.host_label)
    return read_nvml() or []


_VENDOR_WORDS = {"NVIDIA", "TESLA", "GEFORCE", "QUADRO"}
_SERIES_WORDS = {"RTX", "GTX"}


def gpu_type_of(model: str) -> str:
    """The type a run asks for (`resources.gpu_type`) that a device's model name is: `A100` for both `A100`
    and NVML's `NVIDIA A100-SXM4-80GB`, `H100` for `NVIDIA H100 80GB HBM3`, `RTX4090` for
    `NVIDIA GeForce RTX 4090`."""
    words = [word for word in model.upper().replace("-", " ").split() if word not in _VENDOR_WORDS]
    if not words:
        return model.strip().upper()
    if words[0] in _SERIES_WORDS and len(words) > 1:
        return words[0] + words[1]
    return words[0]


def requested(resources: dict) -> tuple[str | None, int]:
    """(gpu_type normalised like `gpu_type_of`, device count) a run's resources ask for; a type without a count
    asks for one device, as the simulated trainer reads it."""
    gpu_type = resources.get("gpu_type")
    count = resources.get("gpu_count")
    if count is None:
        count = 1 if gpu_type else 0
    normalised = gpu_type_of(gpu_type) if isinstance(gpu_type, str) and gpu_type.strip() else None
    return normalised, count if isinstance(count, int) else 0


def visible_devices(device_ids: list[str], indexes: list[int]) -> str:
    """CUDA_VISIBLE_DEVICES for leased devices: their UUIDs when they are real, else their CUDA indexes."""
    if all(device_id.startswith(("GPU-", "MIG-")) for device_id in device_ids):
        return ",".join(device_ids)
    return ",".join(str(index) for index in indexes)
