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


class UsageGrouping(Word):
    """How GPU usage is summed up (`GET /resources/usage?group_by=`)."""

    PROJECT = "project"
    USER = "user"
    GPU_TYPE = "gpu_type"
