"""ltm: LLM training management."""

from ltm.client import ApiError, Client
from ltm.settings import Settings

__all__ = ["ApiError", "Client", "Settings"]
