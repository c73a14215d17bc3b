"""Where artifact files may live: the one place that decides whether a path is inside a root."""

import os
import posixpath


def within_root(path: str, root: str) -> bool:
    """True when `path` names something inside the artifact root, after resolving '..' and links."""
    if "://" in root:
        scheme, _, rest = root.partition("://")
        if not path.startswith(scheme + "://"):
            return False
        inner = posixpath.normpath(path[len(scheme) + 3:])
        base = posixpath.normpath(rest)
        return inner.startswith(base.rstrip("/") + "/")
    if "://" in path and not path.startswith("file://"):
        return False
    local = os.path.realpath(path.removeprefix("file://"))
    base = os.path.realpath(root)
    return local.startswith(base.rstrip(os.sep) + os.sep)
