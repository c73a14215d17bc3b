from fastapi import APIRouter

from ltm.models import TrainerInfo
from ltm.trainers import installed, trainer_info

router = APIRouter(tags=["训练器"])


@router.get("/trainers", response_model=list[TrainerInfo], summary="列出已安装的训练器及其超参数")
def list_trainers():
    return [trainer_info(trainer) for trainer in installed().values()]
