"""The dashboard's picture of the rig, kept up to date from MQTT (status, state, events).

Liveness is judged on this machine's monotonic clock at receipt, as the master's registry does:
a node is online while its status is not ``offline`` and its last live state is younger than
``dead_after``. Exposure progress is the node's own figure, carried forward with our clock from
when it arrived, so a Pi whose clock is off does not bend the bar.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..errors import ProtocolError
from ..protocol import messages, topics
from .progress import long_work

MAX_POINTS = 64  # autofocus points kept per node (a sweep is ~9-15)


@dataclass
class NodeView:
    name: str
    status: str | None = None
    state: dict = field(default_factory=dict)
    state_rx: float | None = None  # monotonic receipt of the last state (live or retained)
    live_rx: float | None = None  # monotonic receipt of the last *live* state
    vcurve: dict | None = None  # latest autofocus: {run_id, filter, points, status, position}
    last_frame: dict | None = None  # the last exposure_done payload


class LiveModel:
    def __init__(self, topic_tree: topics.Topics, dead_after: float, clock=time.monotonic):
        self.topics = topic_tree
        self.dead_after = dead_after
        self._clock = clock
        self._nodes: dict[str, NodeView] = {}
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change, so the SSE loop can skip identical snapshots

    def attach(self, transport) -> None:
        for kind in (topics.STATUS, topics.STATE, topics.EVENT):
            transport.subscribe(self.topics.every(kind), self.on_message)

    def on_message(self, msg) -> None:
        ref = self.topics.parse(msg.topic)
        if ref is None:
            return
        now = self._clock()
        if ref.kind == topics.STATUS:
            with self._lock:
                self._node(ref.node).status = msg.payload.decode("utf-8", "replace")[:16]
                self.version += 1
            return
        try:
            data = messages.parse_json(msg.payload)
        except ProtocolError:
            return
        if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
            return
        payload, mtype = data["payload"], data.get("type")
        with self._lock:
            view = self._node(ref.node)
            if ref.kind == topics.STATE:
                view.state, view.state_rx = payload, now
                if not msg.retain:
                    view.live_rx = now
            elif mtype == "autofocus_started":
                view.vcurve = {"run_id": payload.get("run_id"), "filter": payload.get("filter"), "points": [],
                               "status": "running", "position": None}
            elif mtype == "autofocus_point" and view.vcurve is not None:
                if len(view.vcurve["points"]) < MAX_POINTS:
                    view.vcurve["points"].append([payload.get("position"), payload.get("hfr")])
            elif mtype == "autofocus_done" and view.vcurve is not None:
                view.vcurve.update(status=payload.get("status"), position=payload.get("position"))
            elif mtype == "exposure_done" or (mtype == "frame_measured" and payload.get("grade")):
                view.last_frame = payload  # frame_measured: a node that grades after its reply
            self.version += 1

    def _node(self, name: str) -> NodeView:
        return self._nodes.setdefault(name, NodeView(name))

    def snapshot(self) -> dict:
        now = self._clock()
        with self._lock:
            nodes = [self._row(v, now) for v in sorted(self._nodes.values(), key=lambda v: v.name)]
            night = next((n["night"] for n in nodes if n["role"] == "master" and n["night"]), None)
            return {"nodes": nodes, "night": night, "version": self.version}

    def _row(self, v: NodeView, now: float) -> dict:
        s = v.state
        online = v.status != topics.OFFLINE and v.live_rx is not None and now - v.live_rx < self.dead_after
        exposure = s.get("exposure") if isinstance(s.get("exposure"), dict) else None
        progress = None
        if exposure and exposure.get("duration") and v.state_rx is not None and online:
            progress = min(1.0, (exposure.get("progress") or 0.0) + (now - v.state_rx) / float(exposure["duration"]))
        focus_points = len(v.vcurve["points"]) if v.vcurve and v.vcurve["status"] == "running" else None
        return {
            "name": v.name, "role": s.get("role"), "online": online, "status": v.status,
            "phase": s.get("phase") if online else "offline", "filter": s.get("filter"),
            "exposure": None if not exposure else {"filter": exposure.get("filter"), "duration": exposure.get("duration"),
                                                    "progress": None if progress is None else round(progress, 4)},
            "hfr": s.get("hfr"), "stars": s.get("stars"), "focuser_position": s.get("focuser_position"),
            "temperature": s.get("temperature"), "cooling": s.get("cooling"), "night": s.get("night"),
            "guiding": s.get("guiding"), "frames": s.get("frames"), "error": s.get("error"),
            "heartbeat_age": None if v.live_rx is None else round(now - v.live_rx, 1),
            "last_grade": None if not v.last_frame else {"grade": v.last_frame.get("grade"),
                                                         "reason": v.last_frame.get("grade_reason")},
            "work": long_work(s, progress, focus_points) if online else None,
            "vcurve": v.vcurve,
        }
