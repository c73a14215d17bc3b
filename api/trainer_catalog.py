"""The trainers the API offers: names and declared hyperparameters, read without importing heavy dependencies."""

from ltm.api.errors import unprocessable
from ltm.trainers import InvalidConfig, installed


def checked_trainer(name: str, field: str = "trainer") -> str:
    available = installed()
    if name not in available:
        raise unprocessable(f"{field}：未安装训练器 {name!r}，已安装的训练器：{'、'.join(available) or '无'}", field)
    return name


def checked_hyperparameters(trainer: str, hyperparameters: dict) -> None:
    """The trainer's own declaration decides, before anything is stored or launched (no heavy imports)."""
    try:
        installed()[trainer].resolve_hyperparameters(hyperparameters)
    except InvalidConfig as exc:
        raise unprocessable(f"hyperparameters：{exc}", "hyperparameters") from None
