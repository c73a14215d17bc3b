from fastapi import APIRouter, Request

from ltm import arrow_batches
from ltm.api import ingest_route
from ltm.api.errors import BODY_ERRORS, responses
from ltm.models import ReportResult

router = APIRouter(prefix="/projects/{project_id}/runs/{run_id}/report", tags=["运行"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RunReport"}},
            arrow_batches.REPORT_MEDIA_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": '首行 JSON：{"progress": {...}, "logs": 字节数, "metrics": 字节数}，'
                    "换行后依次是日志批次和指标批次的 Arrow IPC 流（格式同写入日志、写入指标；字节数为 0 表示没有）",
                }
            },
        },
    }
}


@router.post(
    "",
    response_model=ReportResult,
    summary="一次上报日志、指标与进度（供训练流程使用）",
    description="日志批次、指标批次和进度在同一次提交中写入，要么全部写入，要么全部不写入。"
    "batch_id 规则同写入日志、写入指标：重试同一批次只记一次。进度字段省略或为 null 表示不变。"
    "应答带有运行的当前状态；运行已结束时仍可发送不含新数据和进度的报告来得知状态。",
    openapi_extra=_BODY,
    responses=responses(404, 409, *BODY_ERRORS),
)
async def report_run(request: Request, project_id: str, run_id: str):
    """Documents the operation; `ingest_route.IngestRoutes` serves it before FastAPI's routing is reached."""
    return await ingest_route.ingest(request, ingest_route.REPORT)
