"""What the AppTest console tests share: the app, opening a page with its address, finding widgets and texts."""

from streamlit.testing.v1 import AppTest

from ltm.testing import ROOT

APP = str(ROOT / "console" / "app.py")


def open_console(view: str | None = None, /, **params: str) -> AppTest:
    """The console, on `views/<view>.py` with these query parameters when a view is named."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    if view:
        at.switch_page(f"views/{view}.py")
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def open_tab(at: AppTest, tab: str) -> AppTest:
    """The project page with another of its tabs chosen, as a click on it does: the tab and the address change, and
    the page runs again and draws only that tab."""
    at.session_state["tab"] = tab
    at.query_params["tab"] = tab
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def labelled(widgets, label: str):
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r} among {[w.label for w in widgets]}"
    return found[0]


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]
