"""Imports run one way, at module level and inside functions: console → SDK; flows → SDK; API → store.

The layers (README "Layout"): the contract (`ltm.models`, `ltm.settings`, `ltm.ids`, `ltm.arrow_batches`, the plugin
APIs `ltm.trainers` and `ltm.launchers`) imports only itself; the store imports only itself; the CLI (`ltm.cli`,
`ltm.up`, `ltm.testing`, its command modules) composes the API and the store and is imported by nobody else.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import ltm

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"ltm": "ltm", "store": "ltm.store", "api": "ltm.api", "flows": "ltm.flows", "console": "ltm.console"}
SDK = {"ltm.client", "ltm.reporter", "ltm.host_agent", "ltm.core", "ltm.integrations"}  # what scripts and hosts call
CLI = {"ltm.cli", "ltm.cli_backup", "ltm.cli_tokens", "ltm.up", "ltm.testing"}
WORDS = {"ltm.vocabulary", "ltm.limits"}  # leaf modules every layer may use, the store included
ALLOWED = {
    "words": {"words"},
    "contract": {"contract", "words"},
    "store": {"store", "words"},
    "api": {"api", "store", "contract", "words"},
    "sdk": {"sdk", "contract", "words"},
    "flows": {"flows", "sdk", "contract", "words"},
    "console": {"console", "sdk", "contract", "words"},
    "cli": {"cli", "api", "store", "sdk", "contract", "words"},
}


def layer(module: str) -> str:
    for prefix, name in (
        ("ltm.store", "store"),
        ("ltm.api", "api"),
        ("ltm.flows", "flows"),
        ("ltm.console", "console"),
    ):
        if module == prefix or module.startswith(prefix + "."):
            return name
    top = ".".join(module.split(".")[:2])
    return "sdk" if top in SDK else "cli" if top in CLI else "words" if top in WORDS else "contract"


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imported(path: Path, module: str) -> set[str]:
    names = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module == "ltm":
                names.update(ltm.EXPORTS.get(alias.name, f"ltm.{alias.name}") for alias in node.names)
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("ltm.")}


def test_no_import_runs_the_wrong_way_at_any_depth():
    known = modules()
    wrong = []
    for module, path in sorted(known.items()):
        for target in sorted(imported(path, module)):
            if layer(target) not in ALLOWED[layer(module)]:
                wrong.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_router_imports_another_router():
    routers = {m: p for m, p in modules().items() if m.startswith("ltm.api.routers.")}
    crossing = [
        f"{m} imports {t}"
        for m, p in routers.items()
        for t in imported(p, m)
        if t.startswith("ltm.api.routers.") and t != m
    ]
    assert not crossing, "\n".join(crossing)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ltm.api.app import create_app\n", encoding="utf-8")
    assert "ltm.api.app" in imported(path, "ltm.client")
    assert layer("ltm.api.app") not in ALLOWED[layer("ltm.client")]


def test_importing_the_store_does_not_import_the_sdk():
    code = "import sys, ltm.store; print(sorted(m for m in sys.modules if m.startswith('ltm')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert all(name in {"ltm", *WORDS} or name.startswith("ltm.store") for name in eval(done.stdout))


PROBE = """
import sys
from fastapi.testclient import TestClient
from ltm.api.app import create_app
from ltm.settings import Settings

with TestClient(create_app(Settings(home=sys.argv[1], launcher="none"))) as http:
    names = [t["name"] for t in http.get("/trainers").json()]
    project = http.post("/projects", json={"name": "边界", "owner": "x"}).json()
    for trainer in names:
        run = http.post(f"/projects/{project['id']}/runs", json={"model": "m", "dataset": "sample", "trainer": trainer})
        assert run.status_code == 201, run.text
heavy = sorted(m for m in sys.modules
               if m == "torch" or m.startswith(("torch.", "ltm.flows", "ltm.console", "prefect")))
print(",".join(names), "|", ",".join(heavy))
"""


def test_the_api_process_knows_every_trainer_without_importing_flows_torch_or_prefect(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names, heavy = (part.strip() for part in done.stdout.strip().splitlines()[-1].split("|"))
    assert "simulated" in names.split(",") and "tiny-lm" in names.split(",")
    assert heavy == ""


def test_the_plugin_api_imports_from_outside_the_checkout(tmp_path):
    code = "from ltm.trainers import Hyperparameter, StepOutput, Trainer, TrainerConfig; print(Trainer.__module__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ltm.trainers.base"


OLD_LAUNCHER = """
class OldLauncher:
    def __init__(self, settings):
        self.settings = settings

    def submit(self, run, env):
        return None

    def observe(self, runs):
        return []

    def close(self):
        return None
"""


def test_a_launcher_plugin_missing_part_of_the_interface_is_refused_when_it_is_loaded(tmp_path):
    """A third-party launcher written before owns/started existed fails at start-up, naming what it lacks, rather
    than with a 500 on the first request that needs them."""
    (tmp_path / "old_launcher.py").write_text(OLD_LAUNCHER, encoding="utf-8")
    info = tmp_path / "old_launcher-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: old-launcher\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[ltm.launchers]\nold = old_launcher:OldLauncher\n", encoding="utf-8")
    code = "from ltm.launchers import load_launcher\nfrom ltm.settings import Settings\n"
    code += "load_launcher(Settings(launcher={!r}))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def load(name: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", code.format(name)]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    refused = load("old")
    assert refused.returncode != 0 and "launcher 'old' lacks cancel, owns, started" in refused.stderr
    assert load("prefect").returncode == 0, "ltm's own launcher implements the whole interface"
