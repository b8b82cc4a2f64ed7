"""A bounded wait for a node's device lock: every acquire names what it waited for and fails with a
reason instead of hanging the night behind a stuck exposure, wheel move or autofocus."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from ..errors import IndisyncError


class DeviceBusy(IndisyncError):
    """The device lock was not free within its bound."""


@contextmanager
def bounded(lock: threading.Lock, timeout: float, what: str) -> Iterator[None]:
    """Hold ``lock`` for the block, waiting at most ``timeout`` seconds for it; otherwise raise
    DeviceBusy naming ``what`` could not be done and why."""
    if not lock.acquire(timeout=timeout):
        raise DeviceBusy(
            f"could not {what}: the camera/focuser/wheel were still busy after {timeout:g} s (an exposure, "
            "a wheel move or an autofocus run has not finished; see the log above for which). "
            "If this repeats, check the devices and restart the node"
        )
    try:
        yield
    finally:
        lock.release()
