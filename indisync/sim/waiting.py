"""Bounded polling for tests and benchmarks: the first truthy value of a predicate, or a failure
that says what was awaited (and, when asked, what the rig logged meanwhile)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What was awaited did not happen in time (an AssertionError, so pytest reports it as a failure)."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.1,
               detail: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` every ``step`` s; return its first truthy value. After ``timeout`` s raise
    WaitTimeout naming ``what``, with ``detail()`` (e.g. a rig's logs) appended."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"not within {timeout:g} s: {what}" + (f"\n{detail()}" if detail else ""))
        time.sleep(step)
