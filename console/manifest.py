"""A checkpoint's manifest, readable: lineage, dataset fingerprint, code version, environment, hyperparameters and
final metrics, with the JSON to download."""

import json

import pandas as pd
import streamlit as st

from ltm import Client
from ltm.console import ui
from ltm.console.client import FAILURES, error_text
from ltm.models import CheckpointManifest, DatasetFiles, DatasetName, LineageRun, ResumedCheckpoint


def show_manifest(client: Client, project_id: str, run_id: str, artifact_id: str) -> None:
    try:
        manifest = client.checkpoint_manifest(project_id, run_id, artifact_id)
    except FAILURES as exc:
        st.error(error_text(exc))
        return
    _checkpoint(manifest)
    _lineage(manifest.lineage)
    _dataset(manifest.dataset)
    _code_version(manifest)
    _environment(manifest.run.environment)
    _hyperparameters(manifest.run.hyperparameters)
    _final_metrics(manifest)
    st.download_button(
        "下载清单（JSON）",
        data=json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, indent=2),
        file_name=f"manifest-{manifest.checkpoint.id}.json",
        mime="application/json",
        icon=":material/download:",
    )
    st.caption(f"清单生成于 {ui.fmt_time(manifest.created_at)}，ltm {manifest.ltm_version}")


def _table(rows: list[dict]) -> None:
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _checkpoint(manifest: CheckpointManifest) -> None:
    checkpoint = manifest.checkpoint
    step = ui.EMPTY if checkpoint.step is None else checkpoint.step
    st.markdown(f"**检查点 {checkpoint.name}**（{checkpoint.id}，第 {step} 步，{ui.fmt_size(checkpoint.size_bytes)}）")
    st.caption(f"运行 {manifest.run.name}（{manifest.run.id}）· 路径 {checkpoint.path}")
    if checkpoint.corrupted_at is not None:
        st.error(f"检查点已损坏（{ui.fmt_time(checkpoint.corrupted_at)} 发现）：{checkpoint.corruption}")
    if checkpoint.checksums is None:
        st.caption("写入时没有记录文件的 SHA-256")
    else:
        _table([{"文件": name, "SHA-256": digest} for name, digest in checkpoint.checksums.items()])


def _run_label(entry: LineageRun, current: bool) -> str:
    if entry.missing:
        return f"已删除的运行 {entry.run_id}"
    label = f"{entry.name}（{entry.run_id}）"
    return f"**{label}**" if current else label


def _checkpoint_label(checkpoint: ResumedCheckpoint) -> str:
    step = ui.EMPTY if checkpoint.step is None else checkpoint.step
    if checkpoint.missing:
        return f"已删除的检查点 {checkpoint.id}，第 {step} 步"
    return f"{checkpoint.name}，第 {step} 步"


def lineage_chain(lineage: list[LineageRun]) -> str:
    """First run → (checkpoint) → … → this run."""
    parts = []
    for entry in reversed(lineage):
        if entry.resumed_from is not None and parts:
            parts.append(f"（{_checkpoint_label(entry.resumed_from)}）")
        parts.append(_run_label(entry, current=entry is lineage[0]))
    return " → ".join(parts)


def _lineage(lineage: list[LineageRun]) -> None:
    st.markdown("**谱系**")
    st.markdown(lineage_chain(lineage))
    if any(entry.missing for entry in lineage):
        st.caption("有运行已被删除，谱系在那里中断")
    _table(
        [
            {
                "运行": ui.EMPTY if entry.missing else entry.name,
                "运行 ID": entry.run_id,
                "状态": "已删除" if entry.missing else entry.status.value,
                "起始步": ui.fmt_value(entry.start_step),
                "续训自": _checkpoint_label(entry.resumed_from) if entry.resumed_from else ui.EMPTY,
                "数据集": ui.fmt_value(entry.dataset),
                "代码版本": ui.fmt_value(entry.code_version),
            }
            for entry in lineage
        ]
    )


def _dataset(dataset) -> None:
    st.markdown("**数据集指纹**")
    if isinstance(dataset, DatasetName):
        st.markdown(f"数据集 {dataset.name} 只是名称（由训练器解释），没有文件可计算哈希")
        return
    if not isinstance(dataset, DatasetFiles):
        st.warning(f"无法计算数据集 {dataset.dataset} 的指纹：{dataset.reason}")
        return
    combined = f"`{dataset.sha256}`" if dataset.sha256 else "没有（部分文件未计算）"
    size = ui.fmt_size(dataset.total_bytes)
    st.markdown(f"数据集 {dataset.dataset}：{dataset.file_count} 个文件，共 {size}；合并 SHA-256 {combined}")
    _table(
        [
            {"文件": file.path, "大小": ui.fmt_size(file.size_bytes), "SHA-256": file.sha256 or "未计算"}
            for file in dataset.files
        ]
    )
    if dataset.note:
        st.caption(dataset.note)


def _code_version(manifest: CheckpointManifest) -> None:
    run = manifest.run
    command = f"，命令 `{run.entrypoint}`" if run.entrypoint else f"，训练器 {run.trainer}"
    unrecorded = "未记录" if run.entrypoint else "未记录（训练器运行没有代码版本）"
    version = f"`{run.code_version}`" if run.code_version else unrecorded
    st.markdown(f"**代码版本**：{version}{command}")


def environment_facts(env: dict) -> dict[str, str]:
    python = env.get("python") or {}
    return {
        "Python": f"{python.get('implementation', '')} {python.get('version', '')}".strip() or ui.EMPTY,
        "ltm": env.get("ltm") or ui.EMPTY,
        "torch": env.get("torch") or "未安装",
        "CUDA": env.get("cuda") or "无",
        "平台": " ".join(str(value) for value in (env.get("platform") or {}).values()) or ui.EMPTY,
        "设备类型": env.get("device_type") or ui.EMPTY,
    }


def _environment(env: dict | None) -> None:
    with st.expander("运行环境"):
        if env is None:
            st.caption("训练进程没有上报运行环境")
            return
        _table([{"项目": label, "取值": value} for label, value in environment_facts(env).items()])
        packages = env.get("packages")
        if packages is None:
            st.caption(env.get("packages_note") or "没有记录已安装的包")
            return
        st.markdown(f"已安装的包（{len(packages)} 个）")
        _table([{"包": name, "版本": version} for name, version in packages.items()])


def _hyperparameters(hyperparameters: dict) -> None:
    st.markdown("**超参数**")
    if not hyperparameters:
        st.caption("没有设置超参数")
        return
    _table([{"超参数": name, "取值": ui.fmt_value(value)} for name, value in sorted(hyperparameters.items())])


def _final_metrics(manifest: CheckpointManifest) -> None:
    st.markdown("**最终评估指标**")
    metrics = manifest.final_metrics
    if metrics.values:
        _table([{"指标": name, "取值": f"{value:.6g}"} for name, value in metrics.values.items()])
    else:
        st.caption("没有记录评估指标")
    st.caption(metrics.rule)
