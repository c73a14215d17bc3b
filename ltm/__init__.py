"""ltm: LLM training management. `from ltm import Client` is the SDK; the rest lives in ltm's submodules.

The names below load on first use, so importing any ltm submodule (the store, say) never imports the SDK.
"""

import importlib

EXPORTS = {"Client": "ltm.client", "ApiError": "ltm.client", "Settings": "ltm.settings"}
__all__ = sorted(EXPORTS)


def __getattr__(name: str):
    if name in EXPORTS:
        return getattr(importlib.import_module(EXPORTS[name]), name)
    raise AttributeError(f"module 'ltm' has no attribute {name!r}")
