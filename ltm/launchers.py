"""How the API hands runs to an orchestrator: the interface, and launchers found through `ltm.launchers`.

Only ltm.flows knows Prefect; the API knows this interface and loads the launcher by its entry-point name.
"""

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol

from ltm.models import RunStatus
from ltm.settings import Settings


class LauncherUnavailable(Exception):
    """The orchestrator cannot be reached; the API answers 503 and writes nothing."""


@dataclass(frozen=True)
class Observation:
    run_id: str
    status: RunStatus
    message: str | None = None


class Launcher(Protocol):
    def submit(self, run: dict, env: dict[str, str]) -> str | None:
        """Start the run with `env` set for its process (its launch code; CUDA_VISIBLE_DEVICES when it leased
        GPUs, in which case `run["work_queue"]` names the queue of the host that holds them, else it is None);
        returns the orchestrator's id."""

    def cancel(self, run: dict) -> None:
        """Ask the orchestrator to stop the run."""

    def owns(self, run: dict, orchestrator_id: str) -> bool:
        """Whether the orchestrator's run `orchestrator_id` trains `run` (checked before a flow may claim it)."""

    def started(self, run: dict) -> bool:
        """Whether the orchestrator has started the process that trains `run` (only then may it exchange the
        launch code it was given in `env` for the run's token)."""

    def observe(self, runs: list[dict]) -> list[Observation]:
        """Orchestrator states of active runs that the store should catch up with."""

    def submit_sweep(self, sweep: dict) -> str | None:
        """Start the controller that drives `sweep` (again, after it died: `sweep["controller_starts"]` counts the
        earlier starts); returns the orchestrator's id."""

    def sweep_ended(self, sweep: dict) -> str | None:
        """Why the controller of `sweep` no longer runs (its orchestrator run ended), or None while it runs or
        when that cannot be known."""

    def emit_event(self, event: dict) -> None:
        """Tell the orchestrator that `event` happened (a notification of ltm.api.notifications: its `event` name,
        project, run and details), so its automations can act on it; best effort, never raises."""

    def close(self) -> None: ...


class NoopLauncher:
    """Runs wait for someone to call the training flow directly (embedded use, tests)."""

    def submit(self, run: dict, env: dict[str, str]) -> str | None:
        return None

    def cancel(self, run: dict) -> None:
        return None

    def owns(self, run: dict, orchestrator_id: str) -> bool:
        return True  # nothing is orchestrated, so no other run can be reached through the id

    def started(self, run: dict) -> bool:
        return False  # nothing is launched, so no launch code is ever exchanged

    def observe(self, runs: list[dict]) -> list[Observation]:
        return []

    def submit_sweep(self, sweep: dict) -> str | None:
        return None  # someone runs the controller flow directly

    def sweep_ended(self, sweep: dict) -> str | None:
        return None

    def emit_event(self, event: dict) -> None:
        return None  # no orchestrator to tell; webhooks still deliver

    def close(self) -> None:
        return None


ENTRY_POINT_GROUP = "ltm.launchers"
_INTERFACE = [name for name, value in vars(Launcher).items() if callable(value) and not name.startswith("_")]


def load_launcher(settings: Settings) -> Launcher:
    """`none`, or a launcher registered under the `ltm.launchers` entry-point group (ltm's own: `prefect`)."""
    if settings.launcher == "none":
        return NoopLauncher()
    found = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
    if settings.launcher not in found:
        names = ", ".join(["none", *sorted(found)])
        raise ValueError(f"LTM_LAUNCHER must be one of {names}, not {settings.launcher!r}")
    launcher = found[settings.launcher].load()(settings)
    missing = [name for name in _INTERFACE if not callable(getattr(launcher, name, None))]
    if missing:
        raise ValueError(
            f"launcher {settings.launcher!r} lacks {', '.join(missing)} of ltm.launchers.Launcher; "
            "implement them (see README, Plugins) or use another LTM_LAUNCHER"
        )
    return launcher
