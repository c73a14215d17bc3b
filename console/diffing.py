"""Side-by-side comparison of flat key/value views (project versions, run configurations)."""

from typing import Any

from ltm.console import ui

ABSENT = "（无）"


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            flat.update(flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def side_by_side(
    columns: dict[str, dict[str, Any]], key_label: str = "字段", only_differences: bool = True
) -> list[dict[str, str]]:
    """One row per key with each column's value shown as text; equal rows dropped when `only_differences`."""
    keys = dict.fromkeys(key for values in columns.values() for key in values)
    rows = []
    for key in keys:
        shown = {label: ui.fmt_value(values[key]) if key in values else ABSENT for label, values in columns.items()}
        if only_differences and len(set(shown.values())) <= 1:
            continue
        rows.append({key_label: key, **shown})
    return rows


def unique_labels(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """id → display name, adding the id where names repeat."""
    names = [name for _, name in pairs]
    return {item_id: name if names.count(name) == 1 else f"{name}（{item_id}）" for item_id, name in pairs}
