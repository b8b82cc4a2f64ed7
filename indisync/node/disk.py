"""Free space in storage.directory: checked before each exposure, published in the node's state.

Below ``storage.min_free_gb`` a frame is refused before the shutter opens (DiskSpaceLow, whose
message says how much is free, where, and the fix), so nothing is ever half-written.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..alerts.causes import disk_low_message
from ..errors import IndisyncError

log = logging.getLogger(__name__)

GB = 1e9


class DiskSpaceLow(IndisyncError):
    """Too little free space in storage.directory for another frame; nothing was written."""

    def __init__(self, free_gb: float, directory: str, min_free_gb: float):
        super().__init__(disk_low_message(free_gb, directory, min_free_gb))
        self.free_gb, self.directory, self.min_free_gb = free_gb, directory, min_free_gb


def free_gb(directory: str | os.PathLike) -> float | None:
    """Free space (GB, for an unprivileged writer) of the file system ``directory`` is on; a directory
    not made yet counts as its nearest existing parent. None when it cannot be read."""
    path = Path(directory).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free / GB
    except OSError as exc:
        log.warning("cannot read the free space of %s: %s", directory, exc)
        return None


def check_free_space(storage) -> float | None:
    """The free GB of ``storage.directory``; DiskSpaceLow below ``storage.min_free_gb`` (0: never)."""
    free = free_gb(storage.directory)
    if free is not None and storage.min_free_gb > 0 and free < storage.min_free_gb:
        raise DiskSpaceLow(free, str(Path(storage.directory).absolute()), storage.min_free_gb)
    return free
