"""Who may see a project: a 团队可见 one every caller; a 私有 one only its owner, its members, admins and the tokens
of its own runs. To anyone else it answers 404, exactly as a project that does not exist."""

from ltm.api.auth import Actor
from ltm.store import Database
from ltm.store import auth as auth_store
from ltm.store import runs as run_store
from ltm.vocabulary import Visibility


def _run_project(db: Database, caller: Actor) -> str | None:
    run = run_store.get(db, caller.run_id) if caller.run_id else None
    return run["project_id"] if run else None


def can_see(db: Database, caller: Actor, project: dict) -> bool:
    if project["visibility"] == Visibility.TEAM or caller.is_admin or caller.user == project["owner"]:
        return True
    return _run_project(db, caller) == project["id"] or caller.user in auth_store.members(db, project["id"])


def list_filter(db: Database, caller: Actor) -> dict:
    """The arguments of `projects.list_` that leave out the projects `caller` may not see."""
    return {} if caller.is_admin else {"reader": caller.user, "reader_project": _run_project(db, caller)}
