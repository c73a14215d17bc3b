from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from ltm.api import ingest_route
from ltm.api.deps import Db, RunRow, json_body_only
from ltm.api.errors import BODY_ERRORS, responses, unprocessable
from ltm.api.ingest_payload import ingest_body
from ltm.models import IngestResult, LogBatch, LogLevel, LogPage, Timestamp
from ltm.store import ingest, to_db_time
from ltm.store import logs as log_store

router = APIRouter(
    prefix="/projects/{project_id}/runs/{run_id}/logs", tags=["日志"], dependencies=[Depends(json_body_only)]
)


@router.get("", response_model=LogPage, summary="获取运行日志", responses=responses(404, 422))
def get_logs(
    db: Db,
    run: RunRow,
    page: Annotated[int, Query(ge=1, le=10_000_000, description="页码（从 1 开始）")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500, description="每页日志数量（1–500）")] = 50,
    start_time: Annotated[Timestamp | None, Query(description="筛选在此时间或之后的日志")] = None,
    end_time: Annotated[Timestamp | None, Query(description="筛选在此时间之前的日志")] = None,
    level: Annotated[LogLevel | None, Query(description="最低日志级别，例如 WARNING 返回 WARNING 及以上")] = None,
    q: Annotated[str | None, Query(max_length=500, description="日志内容包含的文本（不区分大小写）")] = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="排序：asc 最早的在前（默认），desc 最新的在前（第 1 页即最新日志）")
    ] = "asc",
):
    if start_time and end_time and to_db_time(start_time) > to_db_time(end_time):
        raise unprocessable("start_time 不能晚于 end_time", "start_time", "query")
    total, items = log_store.page(
        db,
        run["id"],
        offset=(page - 1) * page_size,
        limit=page_size,
        start=start_time,
        end=end_time,
        min_level=level.value if level else None,
        query=q,
        newest_first=order == "desc",
    )
    return {"page": page, "page_size": page_size, "total": total, "items": items}


@router.post(
    "",
    response_model=IngestResult,
    summary="批量写入日志（供训练流程使用）",
    openapi_extra=ingest_body(LogBatch),
    responses=responses(404, 409, *BODY_ERRORS),
)
async def ingest_logs(request: Request, project_id: str, run_id: str):
    """Documents the operation; `ingest_route.IngestRoutes` serves it before FastAPI's routing is reached."""
    return await ingest_route.ingest(request, ingest.LOGS)
