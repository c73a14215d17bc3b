"""Which datasets a run may read: a plain name (the trainer knows what it means), or a file under a dataset root.

The roots are configured (`LTM_DATASET_ROOTS`; default: the bundled samples and <home>/datasets) and their
schemes are the only ones allowed, so a run cannot make a worker read its credentials, `/proc/self/environ`
or connect to an arbitrary host. The API checks at run creation, for every trainer; a trainer checks again
when it opens the file (`read_bytes`).
"""

from ltm import artifact_paths
from ltm.settings import Settings

_PATH_MARKERS = ("/", "\\", ":")


class DatasetRefused(ValueError):
    """The dataset names a location outside the dataset roots; the message says so without touching it."""


def is_name(dataset: str) -> bool:
    """A plain name such as 中文科技论文语料: no path separator, no scheme."""
    return not any(marker in dataset for marker in _PATH_MARKERS) and dataset.strip() not in (".", "..", "~")


def checked(dataset: str, roots: list[str]) -> artifact_paths.Location:
    """Where `dataset` is, resolved as fsspec opens it, when that is inside one of `roots`."""
    allowed = "、".join(roots)
    try:
        location = artifact_paths.locate(dataset)
    except artifact_paths.OutsideRunFolder as exc:
        raise DatasetRefused(f"数据集路径无效：{exc}；允许的数据集根目录：{allowed}") from None
    for root in roots:
        if artifact_paths.locate(root).contains(location):
            return location
    raise DatasetRefused(f"数据集必须是名称，或位于数据集根目录之下的文件；允许的数据集根目录：{allowed}")


def refusal(dataset: str, roots: list[str]) -> str | None:
    """Why `dataset` may not be used (None when it may): a name always may, a path only inside `roots`."""
    if is_name(dataset):
        return None
    try:
        checked(dataset, roots)
    except DatasetRefused as exc:
        return str(exc)
    return None


def read_bytes(dataset: str, settings: Settings | None = None) -> bytes:
    """The file's bytes, after checking it lies under the configured dataset roots (for trainers)."""
    location = checked(dataset, (settings or Settings()).dataset_root_urls)
    return location.filesystem().cat_file(location.path)
