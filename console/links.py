"""Page addresses and links between pages; the deep-link URLs are part of the console's interface."""

from urllib.parse import quote, urlencode

import streamlit as st

from ltm.settings import Settings

PROJECTS_PAGE = "views/projects.py"
PROJECT_PAGE = "views/project.py"
RUN_PAGE = "views/run.py"
COMPARE_PAGE = "views/compare.py"
RESOURCES_PAGE = "views/resources.py"
SWEEP_PAGE = "views/sweeps.py"


def project_params(project_id: str) -> dict:
    return {"project_id": project_id}


def run_params(project_id: str, run_id: str) -> dict:
    return {"project_id": project_id, "run_id": run_id}


def compare_params(project_id: str, run_ids: list[str]) -> dict:
    return {"project_id": project_id, "runs": ",".join(run_ids)}


def sweep_params(project_id: str, sweep_id: str | None = None) -> dict:
    """The 调参 page: a project's sweeps, or one sweep when `sweep_id` is given."""
    return {"project_id": project_id, **({"sweep_id": sweep_id} if sweep_id else {})}


def project_url(project_id: str) -> str:
    return "project?" + urlencode(project_params(project_id))


def run_url(project_id: str, run_id: str) -> str:
    return "run?" + urlencode(run_params(project_id, run_id))


NAME_SAFE = ";/?:@&=+$,#!'()*~"  # kept as typed: a grid's LinkColumn shows the text after # through decodeURI
NAME_IN_URL = r"#(.*)$"  # a LinkColumn's display_text for named_run_url


def named_run_url(project_id: str, run_id: str, name: str) -> str:
    """The run page's address with the run's name after `#`, for a grid to show the name as the link's text."""
    return f"{run_url(project_id, run_id)}#{quote(name, safe=NAME_SAFE)}"


def named_sweep_url(project_id: str, sweep_id: str, name: str) -> str:
    """The sweep page's address with the sweep's name after `#` (see named_run_url)."""
    return f"sweep?{urlencode(sweep_params(project_id, sweep_id))}#{quote(name, safe=NAME_SAFE)}"


def prefect_flow_run_url(flow_run_id: str) -> str:
    base = Settings().prefect_ui_url
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"


def to_projects(label: str = "全部项目") -> dict:
    return {"page": PROJECTS_PAGE, "label": label, "icon": ":material/folder:"}


def to_project(project_id: str, label: str) -> dict:
    return {
        "page": PROJECT_PAGE,
        "label": label,
        "icon": ":material/folder_open:",
        "query_params": project_params(project_id),
    }


def to_run(project_id: str, run_id: str, label: str) -> dict:
    return {
        "page": RUN_PAGE,
        "label": label,
        "icon": ":material/model_training:",
        "query_params": run_params(project_id, run_id),
    }


def to_compare(project_id: str, run_ids: list[str], label: str = "对比运行") -> dict:
    return {
        "page": COMPARE_PAGE,
        "label": label,
        "icon": ":material/compare:",
        "query_params": compare_params(project_id, run_ids),
    }


def to_sweeps(project_id: str, label: str = "调参") -> dict:
    return {"page": SWEEP_PAGE, "label": label, "icon": ":material/tune:", "query_params": sweep_params(project_id)}


def to_sweep(project_id: str, sweep_id: str, label: str) -> dict:
    return {
        "page": SWEEP_PAGE,
        "label": label,
        "icon": ":material/tune:",
        "query_params": sweep_params(project_id, sweep_id),
    }


def to_resources(label: str = "GPU 资源与排队") -> dict:
    return {"page": RESOURCES_PAGE, "label": label, "icon": ":material/memory:"}


def page_link(target: dict) -> None:
    st.page_link(**target)
