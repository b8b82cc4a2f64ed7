"""What viewers (`indisync status`, the dashboard) know of the guards: each guard's retained status and
``guard_state``, fed from MQTT, and one line in words. Pure: no paho, no PyIndi.

    guard (guard): ARMED since 23:10:04 UTC; rig safe: NO; master online: yes; sun -31.2°
    guard (guard): ACTED since 03:12:40 UTC: weather unsafe (...): parked and closed by the guard; rig safe: yes;
        master online: NO; sun -31.2°; last acted 03:12:31 UTC: parked, closed
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..errors import ProtocolError
from ..protocol import messages, topics

log = logging.getLogger(__name__)


@dataclass
class GuardInfo:
    name: str
    status: str | None = None  # "online" / "offline" as last seen
    state: dict | None = None  # the last guard_state payload
    state_ts: str | None = None


class GuardBoard:
    """Every guard seen on the broker: subscribe it with ``attach(transport, tree)``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._guards: dict[str, GuardInfo] = {}

    def attach(self, transport, tree: topics.Topics) -> None:
        for kind in (topics.STATUS, topics.STATE):
            transport.subscribe(tree.guard_every(kind), lambda msg: self.feed(tree, msg.topic, msg.payload))

    def feed(self, tree: topics.Topics, topic: str, payload: bytes) -> None:
        ref = tree.parse_guard(topic)
        if ref is None:
            return
        with self._lock:
            info = self._guards.setdefault(ref.node, GuardInfo(ref.node))
            if ref.kind == topics.STATUS:
                text = payload.decode("utf-8", "replace").strip()
                if text in (topics.ONLINE, topics.OFFLINE):
                    info.status = text
                return
        if not payload:
            return
        try:
            env = messages.decode(payload, kind=topics.STATE)
        except ProtocolError as exc:
            log.warning("ignored a malformed guard state from %s: %s", ref.node, exc)
            return
        if env.type != "guard_state" or env.sender != ref.node:
            log.warning("ignored a %s on guard %s's state topic sent by %s", env.type, ref.node, env.sender)
            return
        with self._lock:
            info.state, info.state_ts = env.payload, env.ts

    def guards(self) -> list[GuardInfo]:
        with self._lock:
            return [GuardInfo(**vars(g)) for _, g in sorted(self._guards.items())]

    def rows(self) -> list[dict]:
        return [row(g) for g in self.guards()]


def row(info: GuardInfo) -> dict:
    """One guard as JSON for `status --json`: its status and its last guard_state (or nulls)."""
    return {"name": info.name, "online": info.status == topics.ONLINE, "status": info.status,
            "last_state": info.state_ts, "guard": info.state}


def _hhmmss(ts: str | None) -> str:
    return f"{ts[11:19]} UTC" if ts else "?"


def _yes(value) -> str:
    return "?" if value is None else ("yes" if value else "NO")


def describe(row: dict) -> str:
    """One line about one guard, from ``row()``."""
    state = row.get("guard")
    name = row["name"]
    if state is None:
        return f"guard ({name}): {'online' if row.get('online') else 'offline'}, no state yet"
    head = f"guard ({name}): {state['state'].upper()} since {_hhmmss(state.get('since'))}"
    if not row.get("online"):
        head += " (guard OFFLINE: not watching)"
    if state.get("reason"):
        head += f": {state['reason']}"
    parts = [f"rig safe: {_yes(state.get('rig_safe'))}", f"master online: {_yes(state.get('master_online'))}"]
    if state.get("sun_alt_deg") is not None:
        parts.append(f"sun {state['sun_alt_deg']:+.1f}°")
    action = state.get("last_action")
    if action:
        did = [w for w, v in (("parked", action.get("parked")), ("closed", action.get("closed"))) if v]
        failed = [w for w, v in (("not parked", action.get("parked")), ("not closed", action.get("closed")))
                  if v is False]
        parts.append(f"last acted {_hhmmss(action.get('at'))}: {', '.join(did + failed) or 'nothing to do'}")
    return f"{head}; {'; '.join(parts)}"
