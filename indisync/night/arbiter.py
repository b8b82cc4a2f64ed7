"""One owner for the mount and the dome's motion.

Every motion the night asks for (unpark, open, slew, centring, the flip) runs through ``move`` with
the token of the state that asked: one at a time, refused once its token is cancelled. A safety park
or close (``secure``) pre-empts it: it cancels the motion in flight, gives it ``release_wait``
seconds to stop (the device helpers abort their own goto when cancelled) and parks. After it nothing
moves until a state newer than the cancelled one asks again, since every token from before is
cancelled. Parks and closes themselves are never cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from ..errors import ActionCancelled
from .token import Token

log = logging.getLogger(__name__)

T = TypeVar("T")
SLICE_S = 0.1


class MotionArbiter:
    def __init__(self, release_wait: float = 5.0, secure_wait: float = 300.0):
        self.release_wait = release_wait
        self.secure_wait = secure_wait  # a park waits this long for a park before it (then goes anyway)
        self._securing = threading.Lock()  # parks and closes follow one another
        self._motion = threading.Lock()  # held by whoever moves the mount or the dome
        self._guard = threading.Lock()  # protects _holder
        self._holder: tuple[Token | None, str] | None = None
        self.preempted: list[str] = []  # what a safety park pre-empted, for the log and the tests

    @property
    def holder(self) -> str | None:
        with self._guard:
            return None if self._holder is None else self._holder[1]

    def move(self, token: Token, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a motion) while owning the mount and the dome. ActionCancelled when ``token``
        is (or becomes, while waiting for the owner before us) cancelled; ``fn`` checks it too."""
        token.check(what)
        while not self._motion.acquire(timeout=SLICE_S):
            token.check(what)
        try:
            token.check(what)
            with self._guard:
                self._holder = (token, what)
            return fn()
        finally:
            with self._guard:
                self._holder = None
            self._motion.release()

    def secure(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (park, close) now: cancel whatever moves, let it stop (bounded), then run."""
        queued = self._securing.acquire(timeout=self.secure_wait)
        if not queued:
            log.error("the park before this one is still running after %g s: %s anyway", self.secure_wait, what)
        try:
            return self._preempt_and_run(what, fn)
        finally:
            if queued:
                self._securing.release()

    def _preempt_and_run(self, what: str, fn: Callable[[], T]) -> T:
        with self._guard:
            holder = self._holder
        if holder is not None and holder[0] is not None:
            holder[0].cancel(f"pre-empted by {what}")
            self.preempted.append(holder[1])
            log.warning("%s pre-empts %s", what, holder[1])
        started = time.monotonic()
        got = self._motion.acquire(timeout=self.release_wait)
        if not got:
            log.error("%s still holds the mount %.1f s after it was cancelled: %s anyway", self.holder,
                      time.monotonic() - started, what)
        else:
            with self._guard:
                self._holder = (None, what)
        try:
            return fn()
        finally:
            if got:
                with self._guard:
                    self._holder = None
                self._motion.release()


__all__ = ["MotionArbiter", "ActionCancelled"]
