from fastapi import APIRouter

from api.errors import unprocessable
from flows.trainers import describe, installed
from ltm.models import TrainerInfo

router = APIRouter(tags=["训练器"])


def checked_trainer(name: str, field: str = "trainer") -> str:
    available = installed()
    if name not in available:
        raise unprocessable(f"{field}：未安装训练器 {name!r}，已安装的训练器：{'、'.join(available) or '无'}", field)
    return name


@router.get("/trainers", response_model=list[TrainerInfo], summary="列出已安装的训练器及其超参数")
def list_trainers():
    return [describe(trainer) for trainer in installed().values()]
