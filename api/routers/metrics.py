from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ltm.api import ingest_route
from ltm.api.deps import Db, RunRow, json_body_only
from ltm.api.errors import BODY_ERRORS, invalid_field, responses
from ltm.api.ingest_payload import ingest_body
from ltm.limits import MAX_METRIC_NAMES, MAX_NAME_LENGTH
from ltm.models import IngestResult, MetricBatch, MetricSeriesList
from ltm.store import ingest
from ltm.store import metrics as metric_store

router = APIRouter(
    prefix="/projects/{project_id}/runs/{run_id}/metrics", tags=["指标"], dependencies=[Depends(json_body_only)]
)


@router.get("", response_model=MetricSeriesList, summary="获取降采样后的指标曲线", responses=responses(404, 422))
def get_metrics(
    db: Db,
    run: RunRow,
    names: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_METRIC_NAMES,
            description=f"指标名称，可重复或用逗号分隔；缺省为全部；最多 {MAX_METRIC_NAMES} 个，"
            f"每个不超过 {MAX_NAME_LENGTH} 个字符",
        ),
    ] = None,
    max_points: Annotated[int, Query(ge=1, le=10_000, description="每条曲线最多返回的点数")] = 1000,
):
    wanted = [n.strip() for item in names or [] for n in item.split(",") if n.strip()]
    if len(wanted) > MAX_METRIC_NAMES:
        raise invalid_field("query", "names", f"元素数量不能超过 {MAX_METRIC_NAMES}")
    if any(len(name) > MAX_NAME_LENGTH for name in wanted):
        raise invalid_field("query", "names", f"每个指标名称的长度不能超过 {MAX_NAME_LENGTH}")
    return {"series": metric_store.downsample(db, run["id"], wanted or None, max_points)}


@router.post(
    "",
    response_model=IngestResult,
    summary="批量写入指标（供训练流程使用）",
    openapi_extra=ingest_body(MetricBatch),
    responses=responses(404, 409, *BODY_ERRORS),
)
async def ingest_metrics(request: Request, project_id: str, run_id: str):
    """Documents the operation; `ingest_route.IngestRoutes` serves it before FastAPI's routing is reached."""
    return await ingest_route.ingest(request, ingest.METRICS)
