"""The node's abort flag, and the race it closes: an ``abort`` that arrives just before the exposure
or autofocus it was meant for starts.

``abort`` runs at once on its own lane; ``expose`` and ``autofocus`` wait for a worker and then clear
the flag as they start. So an abort sent after an expose (rain, a second after the frame was
ordered) can overtake it and be wiped. The gate remembers, per sender, the send time (the envelope's
``ts``, the sender's own clock) of the newest abort; a command that starts finds out whether its
sender aborted after sending it, and then does not start at all.
"""

from __future__ import annotations

import threading
from datetime import datetime

from ..errors import ExposureAborted


def ts_epoch(ts: str | None) -> float | None:
    """An envelope ``ts`` (ISO-8601 UTC) as POSIX seconds; None when absent or unreadable."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class AbortGate:
    def __init__(self):
        self.event = threading.Event()  # set: abort what runs now (read by the exposure and autofocus loops)
        self._newest: dict[str, float] = {}  # sender -> ts of the newest abort it sent
        self._lock = threading.Lock()

    def abort(self, sender: str | None = None, ts: str | None = None) -> None:
        at = ts_epoch(ts)
        with self._lock:
            if sender is not None and at is not None and at > self._newest.get(sender, float("-inf")):
                self._newest[sender] = at
            self.event.set()

    def begin(self, sender: str | None = None, ts: str | None = None, what: str = "exposure") -> None:
        """Start of a command that abort may end: clear the flag, unless its sender aborted after
        sending it (then ExposureAborted: it never starts)."""
        at = ts_epoch(ts)
        with self._lock:
            newest = self._newest.get(sender) if sender is not None else None
            if at is not None and newest is not None and newest >= at:
                self.event.set()
                raise ExposureAborted(f"{what} aborted before it started: an abort sent after it arrived first")
            self.event.clear()
