"""The words of the wire format, defined once: statuses, tags, artifact kinds, log levels, roles, visibility.

A leaf module (it imports nothing of ltm), so the store may use it too.
"""

from enum import Enum


class Word(str, Enum):
    """A wire value of the vocabulary: in messages and f-strings it reads as itself, as it does on the wire."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class RunStatus(Word):
    QUEUED = "排队中"
    RUNNING = "运行中"
    CANCELLING = "取消中"
    CANCELLED = "已取消"
    COMPLETED = "已完成"
    FAILED = "失败"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES

    @property
    def is_active(self) -> bool:
        return not self.is_terminal


TERMINAL_RUN_STATUSES = frozenset({RunStatus.CANCELLED, RunStatus.COMPLETED, RunStatus.FAILED})
ACTIVE_RUN_STATUSES = tuple(status.value for status in RunStatus if status not in TERMINAL_RUN_STATUSES)


class ProjectStatus(Word):
    DRAFT = "草稿"
    ACTIVE = "进行中"
    IDLE = "空闲"
    ARCHIVED = "已归档"


class Visibility(Word):
    """Who may read a project: every token (团队可见), or only its owner, its members and admins (私有)."""

    TEAM = "团队可见"
    PRIVATE = "私有"


class TagValue(Word):
    CANDIDATE = "候选"
    RELEASE = "发布"
    ARCHIVE = "归档"


class ArtifactType(Word):
    CHECKPOINT = "checkpoint"
    EVENT = "event"
    EVALUATION = "evaluation"
    CONFIG = "config"


class LogLevel(Word):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class Role(Word):
    """Token roles, weakest first; `runner` is the token a run's own flow gets, scoped to that run; `launch` marks
    the one-time code a launched flow exchanges for its runner token, which is never accepted as a token itself."""

    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
    RUNNER = "runner"
    LAUNCH = "launch"


USER_ROLES = (Role.VIEWER, Role.MEMBER, Role.ADMIN)  # the ones a person's token can have, in rising rank


class ReleaseAction(Word):
    RELEASE = "发布"
    ROLLBACK = "回滚"


class ReleaseState(Word):
    """A release request: waiting for a second person (待批准), the project's current release (生效), moved away
    from (已被取代), refused (已拒绝), or taken back by an admin (已撤销)."""

    PENDING = "待批准"
    CURRENT = "生效"
    SUPERSEDED = "已被取代"
    REJECTED = "已拒绝"
    WITHDRAWN = "已撤销"


class SweepStatus(Word):
    RUNNING = "运行中"
    COMPLETED = "已完成"
    CANCELLED = "已取消"
    FAILED = "失败"

    @property
    def is_terminal(self) -> bool:
        return self != SweepStatus.RUNNING


class TrialState(Word):
    """A sweep trial across its runs: it trains (运行中), reached the end (已完成), was stopped early by the pruner
    (已剪枝), or ended without an objective (失败, 已取消)."""

    RUNNING = "运行中"
    COMPLETED = "已完成"
    PRUNED = "已剪枝"
    FAILED = "失败"
    CANCELLED = "已取消"


class Sampler(Word):
    RANDOM = "random"
    TPE = "tpe"
    GRID = "grid"


class Pruner(Word):
    NONE = "none"
    MEDIAN = "median"
    ASHA = "asha"
    HYPERBAND = "hyperband"


class Direction(Word):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class UsageGrouping(Word):
    """How GPU usage is summed up (`GET /resources/usage?group_by=`)."""

    PROJECT = "project"
    USER = "user"
    GPU_TYPE = "gpu_type"


FIELD_LABELS = {
    "name": "名称",
    "description": "描述",
    "objective": "目标",
    "task_type": "任务类型",
    "base_model": "基线模型",
    "owner": "负责人",
    "tags": "标签",
    "tag": "标签",
    "notes": "备注",
    "default_hyperparameters": "默认超参数",
    "default_trainer": "默认训练器",
    "default_priority": "默认优先级",
    "visibility": "可见范围",
    "archived": "已归档",
    "members": "成员",
    "model": "模型",
    "dataset": "数据集",
    "hyperparameters": "超参数",
    "resources": "资源",
    "gpu_type": "GPU 类型",
    "gpu_count": "GPU 数量",
    "trainer": "训练器",
    "priority": "优先级",
    "entrypoint": "启动命令",
    "source": "代码目录",
    "processes": "进程数",
    "q": "搜索内容",
    "status": "状态",
    "sort": "排序",
    "limit": "每页条数",
    "offset": "跳过条数",
    "page": "页码",
    "page_size": "每页条数",
    "level": "日志级别",
    "start_time": "开始时间",
    "end_time": "结束时间",
    "order": "排序方向",
    "since": "起始时间",
    "until": "截止时间",
    "source_artifact_id": "源检查点 ID",
    "lines": "日志",
    "message": "消息",
    "timestamp": "时间",
    "points": "指标点",
    "step": "步数",
    "value": "取值",
    "path": "路径",
    "type": "类型",
    "size_bytes": "大小",
    "progress": "进度",
    "current_step": "当前步数",
    "total_steps": "总步数",
    "gpu_utilization": "GPU 利用率",
    "user": "用户",
    "role": "角色",
    "target": "目标路径",
    "devices": "设备",
    "index": "序号",
    "model_name": "型号",
    "host": "主机",
    "run_id": "运行 ID",
    "batch_id": "批次 ID",
    "unit": "单位",
    "by": "操作人",
    "names": "指标名称",
    "max_points": "最多点数",
    "work_queue": "工作队列",
    "memory_mb": "显存（MB）",
    "group_by": "分组方式",
    "body": "请求体",
    "release_approval": "发布须经批准",
    "hooks": "Webhook",
    "url": "地址",
    "format": "格式",
    "events": "事件",
    "preemption": "允许抢占",
    "max_restarts": "自动重试次数",
    "hang_minutes": "卡住判定分钟数",
    "metric_thresholds": "指标阈值",
    "log_rules": "日志规则",
    "pattern": "正则表达式",
    "action": "动作",
    "label": "标签",
    "above": "上限",
    "below": "下限",
    "artifact_id": "检查点 ID",
    "release_id": "发布 ID",
    "replaces": "确认取代的发布",
    "template": "运行模板",
    "space": "搜索空间",
    "low": "下限",
    "high": "上限",
    "log": "对数刻度",
    "values": "候选值",
    "metric": "指标",
    "direction": "优化方向",
    "sampler": "采样器",
    "pruner": "剪枝器",
    "max_trials": "最大试验数",
    "parallelism": "并行数",
    "reduction_factor": "淘汰比例",
    "min_epochs": "最少训练轮数",
    "seed": "随机种子",
    "entries": "日志条目",
    "number": "试验编号",
    "params": "参数",
    "rung": "层",
    "state": "状态",
    "reason": "原因",
}
# Their keys are the user's own.
FREE_KEYS = frozenset({"hyperparameters", "default_hyperparameters", "resources", "space", "params"})


def field_label(path: str | list) -> str:
    """A field path as a person reads it: `tags.0` → 标签第 1 项, `hyperparameters.lr` → 超参数 lr."""
    parts = path.split(".") if isinstance(path, str) else [str(part) for part in path]
    shown, parent = "", None
    for part in parts:
        if part.isdigit():
            shown += f"第 {int(part) + 1} 项"
        elif parent == "resources" and part in FIELD_LABELS:
            shown = FIELD_LABELS[part]
        elif parent in FREE_KEYS:
            shown += f" {part}"
        elif parent is not None and parent.isdigit():
            shown += "的" + FIELD_LABELS.get(part, part)
        else:
            shown += (" " if shown else "") + FIELD_LABELS.get(part, part)
        parent = part
    return shown or "输入"
