from fastapi import APIRouter

from ltm.api import fidelity
from ltm.api.deps import RunRow, Runs
from ltm.api.errors import responses
from ltm.models import ResumeFidelity

router = APIRouter(tags=["运行"])


@router.get(
    "/projects/{project_id}/runs/{run_id}/fidelity",
    response_model=ResumeFidelity,
    summary="恢复保真度：与原运行逐步比较指标",
    description="从检查点恢复的运行与原运行在检查点之后都训练过的每一步逐点比较指标（浮点数完全相等才算一致，"
    "不设容差），答复一致、第一个不同的步与差值、以及两个运行上报的环境（版本、设备类型、已安装的包）有哪些不同。"
    "只读存储中的指标，不做额外训练；运行仍在进行时比较至今已有的步。GPU 监控（gpu/…）与吞吐（…_per_second）"
    "指标衡量机器而非模型，不参与比较。",
    responses=responses(404, 422),
)
def get_fidelity(runs: Runs, run: RunRow):
    return fidelity.verdict(runs.db, run)
