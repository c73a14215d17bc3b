import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from ltm.api import errors, ingest_route
from ltm.api.auth import actor
from ltm.api.group_commit import GroupCommit
from ltm.api.ingest_payload import document_ingest_models
from ltm.api.limits import BodySizeLimit, NoEncodedSlash
from ltm.api.notifications import Notifications
from ltm.api.origin_guard import OriginGuard
from ltm.api.preemption import Preemption
from ltm.api.release_service import ReleaseService
from ltm.api.restarts import Restarter
from ltm.api.routers import (
    access,
    admin,
    artifacts,
    deletion,
    fidelity,
    logs,
    manifests,
    metrics,
    projects,
    releases,
    reports,
    resources,
    retention,
    runs,
    sweeps,
    trainers,
    webhooks,
)
from ltm.api.run_service import RunService
from ltm.api.sweep_service import SweepService
from ltm.launchers import Launcher, LauncherUnavailable, load_launcher
from ltm.models import Health
from ltm.settings import Settings
from ltm.store import Database
from ltm.vocabulary import TERMINAL_RUN_STATUSES

log = logging.getLogger("ltm.api")

DESCRIPTION = "LLM 训练管理 API：项目、训练运行（Prefect 流程）、日志、指标与工件。"


async def _reconcile_forever(service: RunService, sweeps: SweepService, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(service.reconcile)
            await asyncio.to_thread(sweeps.restart_dead_controllers)
        except LauncherUnavailable as exc:
            log.warning("暂时无法与编排服务同步运行状态：%s", exc)
        except RuntimeError as exc:
            if "after shutdown" in str(exc):
                return  # the interpreter is exiting (an embedded API at exit): no more worker threads
            log.exception("与编排服务同步运行状态失败")
        except Exception:
            log.exception("与编排服务同步运行状态失败")


async def _admit_forever(service: RunService, every: float) -> None:
    """GPU admission: right after a run ends (its devices are free), and every `every` seconds."""
    while not service.stopping:
        try:
            await asyncio.to_thread(service.admit_when_due, every)
        except LauncherUnavailable as exc:
            log.warning("暂时无法把已分配 GPU 的运行交给编排服务：%s", exc)
            await asyncio.sleep(every)
        except RuntimeError as exc:
            if "after shutdown" in str(exc):
                return  # the interpreter is exiting (an embedded API at exit): no more worker threads
            log.exception("GPU 分配失败")
            await asyncio.sleep(every)
        except Exception:
            log.exception("GPU 分配失败")
            await asyncio.sleep(every)


def create_app(settings: Settings | None = None, launcher: Launcher | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        db = Database(settings.db_path, settings.db_memory_limit)
        app.state.db = db
        app.state.settings = settings
        app.state.runs = RunService(db, launcher or load_launcher(settings), settings)
        preemption = Preemption(app.state.runs)
        app.state.runs.on_waiting = preemption.for_waiting
        app.state.runs.listeners.append(preemption.requeue)
        app.state.runs.listeners.append(Restarter(app.state.runs).on_moved)
        app.state.sweeps = SweepService(app.state.runs)
        app.state.releases = ReleaseService(db, settings)
        app.state.notifications = Notifications(db, settings, app.state.runs.launcher).start()
        app.state.runs.listeners.append(app.state.notifications.run_moved)
        app.state.releases.listeners.append(app.state.notifications.released)
        app.state.group_commit = GroupCommit(
            db, frozenset(status.value for status in TERMINAL_RUN_STATUSES), queued_rows=settings.ingest_queue_rows
        )
        reconciler = asyncio.create_task(
            _reconcile_forever(app.state.runs, app.state.sweeps, settings.reconcile_seconds)
        )
        admitter = asyncio.create_task(_admit_forever(app.state.runs, settings.reconcile_seconds))
        try:
            yield
        finally:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
            app.state.runs.stop()
            await admitter
            app.state.runs.launcher.close()
            app.state.group_commit.stop()
            app.state.notifications.stop()
            db.close()

    app = FastAPI(
        title="ltm — LLM 训练管理 API",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # Off: no OpenTelemetry provider is set up, and asking whether one is costs ~0.1 ms on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    app.add_middleware(ingest_route.IngestRoutes)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(NoEncodedSlash)
    app.add_middleware(OriginGuard, settings=settings)
    routers = (
        projects,
        runs,
        fidelity,
        sweeps,
        logs,
        metrics,
        reports,
        artifacts,
        manifests,
        releases,
        trainers,
        resources,
        retention,
        deletion,
        admin,
        access,
        webhooks,
    )
    for module in routers:
        app.include_router(module.router, dependencies=[Depends(actor)], responses=errors.responses(401, 403))
    app.include_router(access.launch_router)
    app.include_router(artifacts.download_router)

    document_ingest_models(app)

    @app.get("/health", tags=["系统"], summary="健康检查", response_model=Health)
    def health() -> dict:
        queue = app.state.group_commit
        return {
            "status": "ok",
            "schema_version": app.state.db.schema_version,
            "ingest": {
                "queued_batches": queue.queued_batches,
                "committed_batches": queue.batches,
                "commits": queue.groups,
                "last_minute": queue.window(),
            },
        }

    return app
