"""Cancellation tokens bound to the night's state: an action started for a state carries the token of
that state's epoch, leaving the state cancels it, and every wait inside the action checks it.

An epoch is one stay in one state (a new state is a new epoch; the next frame in ``imaging`` is not).
A token is also cancelled when the process stops. ``Token.is_set()`` makes it usable wherever a
``threading.Event`` is taken as ``cancel`` (the device helpers, centring).
"""

from __future__ import annotations

import threading
import time

from ..errors import ActionCancelled

SLICE_S = 0.1  # how often a wait looks at the process's stop event besides its own


class Token:
    def __init__(self, epoch: int, state: str, stop: threading.Event | None = None):
        self.epoch = epoch
        self.state = state
        self._cancelled = threading.Event()
        self._stop = stop
        self.why: str | None = None

    def cancel(self, why: str) -> None:
        if not self._cancelled.is_set():
            self.why = why
            self._cancelled.set()

    def is_set(self) -> bool:
        """True once cancelled (or the process is stopping): the action must stop moving anything."""
        return self._cancelled.is_set() or (self._stop is not None and self._stop.is_set())

    cancelled = property(is_set)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when cancelled meanwhile."""
        if self._stop is None:
            return self._cancelled.wait(max(0.0, seconds))
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cancelled.wait(min(SLICE_S, left))
        return True

    def check(self, what: str = "the action") -> None:
        """Raise ActionCancelled when cancelled: call it before every device command."""
        if self.is_set():
            why = self.why or "the process is stopping"
            raise ActionCancelled(f"{what} cancelled: {why}")

    def __repr__(self) -> str:
        return f"Token(epoch={self.epoch}, state={self.state!r}, cancelled={self.is_set()})"


class AnyOf:
    """Set when any of ``flags`` is (a token, the night's stop request, ...); waits like a Token."""

    def __init__(self, *flags):
        self.flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)

    def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(SLICE_S, left))
        return True


class Epochs:
    """The current epoch's token; ``advance`` cancels it and hands out the next one."""

    def __init__(self, stop: threading.Event | None = None):
        self._stop = stop
        self._lock = threading.Lock()
        self._current = Token(0, "(start)", stop)

    @property
    def current(self) -> Token:
        with self._lock:
            return self._current

    def advance(self, state: str, why: str) -> Token:
        with self._lock:
            old = self._current
            self._current = Token(old.epoch + 1, state, self._stop)
        old.cancel(f"the night left {old.state} ({why})"[:300])
        return self._current

    def cancel_all(self, why: str) -> None:
        self.current.cancel(why)
