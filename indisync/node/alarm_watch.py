"""The master's alarm watch: a thread of its own that looks, every few seconds, for what no single
action notices: a node offline too long while the night is active, a clock past mqtt.clock_warn,
a night that stands still (indisync.night.alarms.stuck). It only reads (the registry, the night's
snapshot, a frame counter) and hands alarms to the alerter, so it never holds anything up.

Each condition raises once per episode (a node that comes back and drops again is a new one);
the alerter's dedupe (alerts.repeat_s) limits the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..alerts import Alarm
from ..alerts import causes as alarms
from ..night.alarms import stuck
from ..night.state import State

log = logging.getLogger(__name__)

QUIET_STATES = (State.WAITING_DARK.value, State.WARMING.value, State.DONE.value)  # the night is not active


class MasterAlarmWatch:
    """``night()``: the night's current Snapshot or None; ``frames()``: frames the master has written.
    ``clock``: epoch seconds (the night's clock); ``mono``: monotonic seconds (the registry's)."""

    def __init__(self, cfg, raise_alarm: Callable[[Alarm], bool], registry, night: Callable[[], object],
                 frames: Callable[[], int], clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic, period: float = 5.0):
        self.cfg, self.raise_alarm, self.registry = cfg, raise_alarm, registry
        self.night, self.frames, self.clock, self.mono, self.period = night, frames, clock, mono, period
        self._lock = threading.RLock()
        self._dropped: dict[str, float] = {}  # node -> mono time it went offline
        self._raised: set[str] = set()  # episodes already alarmed (cause keys)
        self._frames_seen: int | None = None
        self._last_frame_at = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        registry.add_listener(self.on_registry)

    # -- the registry's listener (its thread) ----------------------------------------------------
    def on_registry(self, node: str, what: str) -> None:
        with self._lock:
            if what == "joined":
                self._dropped.pop(node, None)
                self._raised.discard(f"node_offline:{node}")
            else:  # offline, missed heartbeats
                self._dropped.setdefault(node, self.mono())

    # -- one look --------------------------------------------------------------------------------
    def check(self) -> list[Alarm]:
        """Look once; raise (and return) the alarms due now."""
        snap = self.night()
        with self._lock:
            due = self._offline(snap) + self._clocks() + self._stuck(snap)
        for alarm in due:
            self.raise_alarm(alarm)
        return due

    def _offline(self, snap) -> list[Alarm]:
        state = getattr(snap, "state", None)
        if state is None or state in QUIET_STATES:
            return []
        out = []
        now = self.mono()
        with self._lock:
            for node, since in sorted(self._dropped.items()):
                key = f"node_offline:{node}"
                if now - since >= self.cfg.alerts.node_offline_s and key not in self._raised:
                    self._raised.add(key)
                    out.append(alarms.node_offline(node, now - since, state))
        return out

    def _clocks(self) -> list[Alarm]:
        out = []
        warn = self.cfg.mqtt.clock_warn
        for info in self.registry.nodes():
            state = info.state or {}
            offset, rtt = state.get("clock_offset_s"), state.get("clock_rtt_s")
            if not info.alive or not isinstance(offset, (int, float)):
                continue
            key = f"clock_offset:{info.name}"
            # as the slave's own warning (protocol/node_link.py): past the limit by more than half the round trip
            if abs(offset) - (rtt or 0.0) / 2 > warn:
                if key not in self._raised:
                    self._raised.add(key)
                    out.append(alarms.clock_offset(info.name, offset, rtt, warn))
            elif abs(offset) <= warn:
                self._raised.discard(key)
        return out

    def _stuck(self, snap) -> list[Alarm]:
        frames = self.frames()
        now = self.clock()
        if frames != self._frames_seen:
            self._frames_seen, self._last_frame_at = frames, now
        if snap is None:
            return []
        key = f"night_stuck:{snap.state}:{snap.since}:{self._last_frame_at}"
        alarm = stuck(snap, now, self._last_frame_at, self.cfg.alerts.night_stuck_s)
        if alarm is None or key in self._raised:
            return []
        self._raised = {k for k in self._raised if not k.startswith("night_stuck:")} | {key}
        return [alarm]

    # -- the thread ------------------------------------------------------------------------------
    def start(self) -> "MasterAlarmWatch":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alarm-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - one bad look must not end the watch
                log.exception("alarm watch")
