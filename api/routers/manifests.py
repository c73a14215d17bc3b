import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ltm.api import release_manifest
from ltm.api.deps import CurrentSettings, Db, RunRow
from ltm.api.errors import responses
from ltm.models import CheckpointManifest

router = APIRouter(tags=["工件"])

DESCRIPTION = (
    "检查点的清单：检查点每个文件写入时记录的 SHA-256；运行的模型、数据集、训练器或脚本命令、超参数、代码版本，"
    "以及训练进程上报的环境（Python、ltm、torch、CUDA 版本，设备类型，已安装的包）；谱系：本运行，以及依次续训自的"
    "上一个运行和检查点，直到第一个运行，已删除的运行标为 missing；数据集指纹：数据集根目录下的文件逐个计算 SHA-256 "
    f"并给出合并哈希（最多计算 {release_manifest.MAX_DATASET_BYTES // 2**20} MiB），只是名称时记录名称；"
    "最终评估指标：检查点所在步或之前最后记录的、名称以 eval_、val_、test_ 开头的指标和调参目标指标。"
    "download=true 时作为附件 manifest-<工件 ID>.json 下载。只有检查点有清单，其他工件返回 422。"
)


@router.get(
    "/projects/{project_id}/runs/{run_id}/artifacts/{artifact_id}/manifest",
    response_model=CheckpointManifest,
    summary="检查点清单",
    description=DESCRIPTION,
    responses=responses(404, 422),
)
def checkpoint_manifest(
    db: Db,
    settings: CurrentSettings,
    run: RunRow,
    artifact_id: str,
    download: Annotated[bool, Query(description="作为附件 manifest-<工件 ID>.json 下载")] = False,
):
    artifact = release_manifest.checkpoint_of(db, run, artifact_id)
    document = release_manifest.manifest(db, settings.artifact_root_url, artifact, settings.dataset_root_urls)
    if not download:
        return document
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f"attachment; filename=manifest-{artifact['id']}.json"},
    )
