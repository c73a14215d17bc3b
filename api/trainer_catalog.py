"""The trainers the API offers, and what a run will train with: its values merged over the project defaults and
checked against the trainer's declared hyperparameters, before anything is stored (no heavy imports).

Merge rule: a run value overrides the project default of the same name; a run value null removes that default, so
the trainer's own default applies. A resume layers its overrides over the source run's values the same way."""

import difflib
import re
from dataclasses import dataclass
from typing import Any

from ltm.api.errors import shown, unprocessable
from ltm.trainers import SCRIPT, Hyperparameter, InvalidConfig, installed
from ltm.vocabulary import field_label

RUN_SOURCE = "运行"
PROJECT_SOURCE = "项目默认"
SOURCE_RUN_SOURCE = "原运行"
TRAINER_SOURCE = "训练器默认"


@dataclass(frozen=True)
class Layer:
    """Hyperparameter values from one place: `source` as the effective configuration shows it, `where` as an
    error names it, `field` the request field a user edits to fix it."""

    source: str
    where: str
    field: str
    values: dict


def run_values(values: dict) -> Layer:
    return Layer(RUN_SOURCE, "运行的超参数", "hyperparameters", values)


def project_defaults(values: dict) -> Layer:
    return Layer(PROJECT_SOURCE, "项目默认超参数", "default_hyperparameters", values)


def source_run_values(values: dict) -> Layer:
    return Layer(SOURCE_RUN_SOURCE, "原运行的超参数", "hyperparameters", values)


def checked_trainer(name: str, field: str = "trainer") -> str:
    available = installed()
    if name not in available:
        label = field_label(field)
        raise unprocessable(f"{label}：未安装训练器 {name!r}，已安装的训练器：{'、'.join(available) or '无'}", field)
    return name


def merged(layers: list[Layer]) -> tuple[dict, dict[str, Layer]]:
    """The values a run stores, later layers over earlier ones (null removes), and the layer each came from."""
    values: dict = {}
    origins: dict[str, Layer] = {}
    for layer in layers:
        for key, value in layer.values.items():
            if value is None:
                values.pop(key, None)
                origins.pop(key, None)
            else:
                values[key], origins[key] = value, layer
    return values, origins


@dataclass(frozen=True)
class Effective:
    name: str
    value: Any
    source: str
    description: str = ""
    default: Any = None


def effective_hyperparameters(trainer: str, layers: list[Layer]) -> tuple[dict, list[Effective]]:
    """The values to store on the run and every hyperparameter it will train with, with where each value comes
    from; 422 naming the key for a value the trainer would refuse or does not declare."""
    values, origins = merged(layers)
    if "trainer" in values:
        _refuse_trainer_key(origins["trainer"])
    declared = installed()[trainer].hyperparameters if trainer != SCRIPT else ()
    if not declared:  # a script or a trainer without a declaration takes any keys
        return values, [Effective(key, value, origins[key].source) for key, value in values.items()]
    by_name = {h.name: h for h in declared}
    for key in values:
        if key not in by_name:
            _refuse_unknown(trainer, key, origins[key], list(by_name))
    resolved = {h.name: _read(h, values, origins) for h in declared}
    try:
        installed()[trainer].check_together(resolved)
    except InvalidConfig as exc:
        mentioned = [key for key in by_name if key in origins and re.search(rf"\b{re.escape(key)}\b", str(exc))]
        named = [f"{key} 来自{origins[key].where}" for key in mentioned]
        sources = f"（{'，'.join(named)}）" if named else ""
        raise unprocessable(f"{exc}{sources}", "hyperparameters") from None
    return values, [
        Effective(h.name, resolved[h.name], _source(h.name, origins), h.description, h.default) for h in declared
    ]


def total_steps(trainer: str, effective: list[Effective]) -> int | None:
    """Steps a trainer run trains in all, where its trainer declares num_epochs and steps_per_epoch."""
    values = {entry.name: entry.value for entry in effective}
    if trainer == SCRIPT or "num_epochs" not in values or "steps_per_epoch" not in values:
        return None
    return values["num_epochs"] * values["steps_per_epoch"]


def _source(name: str, origins: dict[str, Layer]) -> str:
    return origins[name].source if name in origins else TRAINER_SOURCE


def _read(declared: Hyperparameter, values: dict, origins: dict[str, Layer]) -> Any:
    try:
        return declared.read(values)
    except InvalidConfig as exc:
        layer = origins[declared.name]
        raise unprocessable(f"{exc}（来自{layer.where}）", f"{layer.field}.{declared.name}") from None


def _refuse_trainer_key(layer: Layer) -> None:
    if layer.source == PROJECT_SOURCE:
        fix = "请删去这个键，用项目的「默认训练器」（default_trainer）选择训练器"
    else:
        fix = "请删去这个键，用「训练器」字段（请求体的 trainer）选择训练器"
    raise unprocessable(f"{layer.where}里不能写 trainer：{fix}", f"{layer.field}.trainer")


def _refuse_unknown(trainer: str, key: str, layer: Layer, names: list[str]) -> None:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5) or _abbreviated(key, names)
    guess = f"是否想写 {close[0]}？" if close else ""
    remove = "；要去掉项目默认值，在运行的超参数里把它设为 null" if layer.source == PROJECT_SOURCE else ""
    raise unprocessable(
        f"超参数 {shown(key)}（来自{layer.where}）不是训练器 {trainer} 声明的超参数。{guess}"
        f"可用的超参数：{'、'.join(names)}{remove}",
        f"{layer.field}.{shown(key)}",
    )


def _abbreviated(key: str, names: list[str]) -> list[str]:
    """`lr` → learning_rate: the initials of a snake_case name."""
    return [name for name in names if "".join(word[0] for word in name.split("_") if word) == key.lower()]
