"""Which path ids are worth a store lookup: the shapes ltm.ids.new_id makes (prefix_ + 12 lowercase hex)."""

import re

from ltm.ids import PREFIXES
from ltm.models import ArtifactType

_SHAPES = {kind: re.compile(rf"{prefix}_[0-9a-f]{{12}}") for kind, prefix in PREFIXES.items()}
ARTIFACT_KINDS = tuple(kind.value for kind in ArtifactType)


def well_formed(item_id: str, *kinds: str) -> bool:
    """Whether `item_id` could be an id made for one of `kinds`; anything else is simply not found."""
    return any(_SHAPES[kind].fullmatch(item_id) for kind in kinds)
