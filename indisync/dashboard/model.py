"""The dashboard's picture of the rig, kept up to date from MQTT (status, state, events, the
guard, the frame previews).

Liveness is judged on this machine's monotonic clock at receipt, as the master's registry does:
a node is online while its status is not ``offline`` and its last live state is younger than
``dead_after``. Exposure progress is the node's own figure, carried forward with our clock from
when it arrived, so a Pi whose clock is off does not bend the bar.

Nothing a node sends can break the page: every state field and event field is checked against its
schema (protocol/messages.py) one by one, and a bad one is blanked and named on that node's card
(``problems``), while the rest of the node and every other node are shown as usual. A row that
still fails to build is replaced by a row saying so; ``snapshot()`` never raises for what arrived.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import ProtocolError
from ..protocol import messages, topics
from ..protocol.schema import Field
from . import rigview, seasonview, timefmt
from .progress import calib_text, long_work

log = logging.getLogger(__name__)

MAX_POINTS = 64  # autofocus points kept per node (a sweep is ~9-15)
MAX_PREVIEW_BYTES = 2 * 1024 * 1024  # a 480 px JPEG is ~30-80 KB
MAX_PROBLEMS = 8  # per node: what was blanked, with why
MAX_CALIB_SETS = 12  # per node: the calibration sets shown as done (flats per filter, dark/bias sets)
def clean_fields(schema: dict[str, Field], payload: dict, where: str = "") -> tuple[dict, dict[str, str]]:
    """Each known field of ``payload`` checked on its own: (the good ones, {bad field: why}). A bad
    field is left out of the first and named in the second; unknown fields (a newer node's) are
    left out silently."""
    good, bad = {}, {}
    for key, value in payload.items():
        spec = schema.get(key)
        if spec is None:
            continue
        try:
            good[key] = spec.check(value, f"{where}{key}")
        except ProtocolError as exc:
            bad[key] = str(exc)[:300]
        except Exception as exc:  # noqa: BLE001 - a validator that trips on odd data is a bad field too
            bad[key] = f"{where}{key}: {type(exc).__name__}: {exc}"[:300]
    return good, bad


def clean_state(payload: dict) -> tuple[dict, dict[str, str]]:
    """A node's state, field by field; the master's ``rig`` part by part (a bad mount reading
    never hides the weather)."""
    rig = payload.get("rig")
    good, bad = clean_fields(messages.STATE, {k: v for k, v in payload.items() if k != "rig"})
    if isinstance(rig, dict):
        parts, rig_bad = clean_fields(messages.RIG, rig, "rig.")
        good["rig"] = parts
        bad.update({f"rig.{k}": v for k, v in rig_bad.items()})
    elif rig is not None:
        bad["rig"] = f"rig: expected an object, got {messages.show(rig)}"
    return good, bad


@dataclass
class NodeView:
    name: str
    status: str | None = None
    state: dict = field(default_factory=dict)  # the last state, its bad fields left out
    state_rx: float | None = None  # monotonic receipt of the last state (live or retained)
    live_rx: float | None = None  # monotonic receipt of the last *live* state
    vcurve: dict | None = None  # latest autofocus: {run_id, filter, points, status, position}
    last_frame: dict | None = None  # the last exposure_done payload
    problems: dict[str, str] = field(default_factory=dict)  # what of its last state was blanked, and why
    event_problem: str | None = None  # the last event ignored, and why
    preview: bytes | None = None  # the latest frame preview (JPEG), as published for Home Assistant
    preview_rx: float | None = None
    preview_retained: bool = False  # it came as the broker's retained copy (taken before we started)
    preview_version: int = 0
    calib_sets: list = field(default_factory=list)  # the last calibration sets done (rigview.calib_set_view)
    calib_frame: dict | None = None  # the last calibration frame: {frame, adu, exposure, reason}


@dataclass
class GuardView:
    name: str
    status: str | None = None
    state: dict = field(default_factory=dict)
    problem: str | None = None
    state_rx: float | None = None  # monotonic receipt of its last state


class LiveModel:
    def __init__(self, topic_tree: topics.Topics, dead_after: float, clock=time.monotonic,
                 wall=lambda: datetime.now(timezone.utc), zone: str | None = None):
        self.topics = topic_tree
        self.dead_after = dead_after
        self._clock = clock
        self._wall = wall  # the wall clock, for "in 12 min" (tests fix it)
        self.zone = zone  # the site's zone (config site.timezone) when the master does not say
        self._nodes: dict[str, NodeView] = {}
        self._guards: dict[str, GuardView] = {}
        self._lock = threading.Lock()
        self._row_failures: set[str] = set()  # nodes whose row failed to build (logged once each)
        self.version = 0  # bumped on every change, so the SSE loop can skip identical snapshots
        # in each preview's URL with its version: a URL names one image for good, so browsers may cache it
        self._instance = uuid.uuid4().hex[:8]

    # ---- MQTT ---------------------------------------------------------------------------------
    @property
    def previews_filter(self) -> str:
        return f"{self.topics.prefix}/+/image/frame"

    def attach(self, transport) -> None:
        for kind in (topics.STATUS, topics.STATE, topics.EVENT):
            transport.subscribe(self.topics.every(kind), self.on_message)
        for kind in (topics.STATUS, topics.STATE):
            transport.subscribe(self.topics.guard_every(kind), self.on_guard)
        transport.subscribe(self.previews_filter, self.on_preview)

    def on_message(self, msg) -> None:
        try:
            self._on_message(msg)
        except Exception:  # noqa: BLE001 - one odd message must never stop the MQTT thread's handling
            log.exception("dashboard: message on %s not taken", getattr(msg, "topic", "?"))

    def _on_message(self, msg) -> None:
        ref = self.topics.parse(msg.topic)
        if ref is None:
            return
        now = self._clock()
        if ref.kind == topics.STATUS:
            with self._lock:
                self._node(ref.node).status = msg.payload.decode("utf-8", "replace")[:16]
                self.version += 1
            return
        if ref.kind not in (topics.STATE, topics.EVENT):
            return
        why, payload, mtype = _envelope(msg.payload)
        with self._lock:
            view = self._node(ref.node)
            self.version += 1
            if why is not None:
                if ref.kind == topics.STATE:  # the whole state is unreadable: blank it and say so
                    view.state, view.problems = {}, {"state": f"unreadable, ignored: {why}"}
                else:
                    view.event_problem = f"an event was unreadable, ignored: {why}"[:300]
                return
            if ref.kind == topics.STATE:
                view.state, problems = clean_state(payload)
                view.problems = dict(list(problems.items())[:MAX_PROBLEMS])
                view.state_rx = now
                if not msg.retain:
                    view.live_rx = now
                return
            self._on_event(view, mtype, payload)

    def _on_event(self, view: NodeView, mtype, payload: dict) -> None:
        schema = messages.EVENTS.get(mtype) if isinstance(mtype, str) else None
        if schema is None:
            return
        data, bad = clean_fields(schema, payload, f"{mtype}.")
        if bad:
            view.event_problem = "; ".join(bad.values())[:300]
        if mtype == "autofocus_started":
            view.vcurve = {"run_id": data.get("run_id"), "filter": data.get("filter"), "points": [],
                           "status": "running", "position": None}
        elif mtype == "autofocus_point" and view.vcurve is not None:
            if len(view.vcurve["points"]) < MAX_POINTS and data.get("position") is not None:
                view.vcurve["points"].append([data.get("position"), data.get("hfr")])
        elif mtype == "autofocus_done" and view.vcurve is not None:
            view.vcurve.update(status=data.get("status"), position=data.get("position"))
        elif mtype == "exposure_done" or (mtype == "frame_measured" and data.get("grade")):
            view.last_frame = data  # frame_measured: a node that grades after its reply
        elif mtype == "calib_progress":
            view.calib_frame = rigview.calib_frame_view(data)
        elif mtype == "calib_set_done":
            view.calib_sets = (view.calib_sets + [rigview.calib_set_view(data)])[-MAX_CALIB_SETS:]

    def on_guard(self, msg) -> None:
        try:
            ref = self.topics.parse_guard(msg.topic)
            if ref is None:
                return
            name, kind = ref.node, ref.kind
            with self._lock:
                view = self._guards.setdefault(name, GuardView(name))
                self.version += 1
                if kind == topics.STATUS:
                    view.status = msg.payload.decode("utf-8", "replace")[:16]
                elif kind == topics.STATE:
                    why, payload, _ = _envelope(msg.payload)
                    if why is not None:
                        view.state, view.problem = {}, f"state unreadable, ignored: {why}"
                        return
                    view.state_rx = self._clock()
                    view.state, bad = clean_fields(messages.GUARD_STATE, payload)
                    view.problem = "; ".join(bad.values())[:300] or None
        except Exception:  # noqa: BLE001
            log.exception("dashboard: guard message on %s not taken", getattr(msg, "topic", "?"))

    def on_preview(self, msg) -> None:
        """The 480 px JPEG a node publishes (retained) after each frame, for Home Assistant."""
        parts = msg.topic.split("/")
        node = parts[-3] if len(parts) >= 3 else ""
        if not topics.NODE_NAME.match(node) or msg.topic != f"{self.topics.prefix}/{node}/image/frame":
            return
        data = bytes(msg.payload)
        with self._lock:
            view = self._node(node)
            jpeg = data.startswith(b"\xff\xd8")
            if not jpeg or len(data) > MAX_PREVIEW_BYTES:
                what = "not a JPEG" if not jpeg else f"more than {MAX_PREVIEW_BYTES} bytes"
                view.event_problem = f"frame preview of {len(data)} bytes ignored: {what}"
                self.version += 1
                return
            view.preview, view.preview_rx, view.preview_retained = data, self._clock(), bool(msg.retain)
            view.preview_version += 1
            self.version += 1

    def preview(self, node: str) -> bytes | None:
        with self._lock:
            view = self._nodes.get(node)
            return None if view is None else view.preview

    def _node(self, name: str) -> NodeView:
        return self._nodes.setdefault(name, NodeView(name))

    # ---- the snapshot the page renders ----------------------------------------------------------
    def snapshot(self) -> dict:
        now, wall = self._clock(), self._wall()
        with self._lock:
            rows = [self._safe_row(v, now) for v in sorted(self._nodes.values(), key=lambda v: v.name)]
            master = _pick_master(self._nodes, rows)
            rig_state = master.state.get("rig") if master is not None else None
            tz, tz_label = timefmt.zone((rig_state or {}).get("site_tz") or self.zone)
            night_row = next((n for n in rows if n["role"] == "master" and n["night"]), None)
            night = None
            try:
                night = rigview.night_view(night_row["night"], wall, tz) if night_row else None
            except Exception:  # noqa: BLE001 - the night line must not take the page with it
                log.exception("dashboard: night line")
            guards = [self._guard(g, now, wall, tz) for g in sorted(self._guards.values(), key=lambda g: g.name)]
            master_row = next((r for r in rows if master is not None and r["name"] == master.name), None)
            rig = self._rig(master, rig_state, guards, wall, tz, tz_label, master_row)
            season = self._season(master, wall, tz)
            return {"nodes": rows, "night": night, "rig": rig, "season": season, "version": self.version}

    @staticmethod
    def _season(master, wall, tz) -> dict | None:
        """The master's season (state.season, already checked field by field); None: no scheduler:."""
        if master is None:
            return None
        try:
            view = seasonview.season_view(master.state.get("season"), wall, tz)
            if view is None and "season" in master.problems:  # the whole field failed its schema: say so
                view = seasonview.blank(f"the master's season state was ignored: {master.problems['season']}")
            return view
        except Exception as exc:  # noqa: BLE001 - the season panel must not take the page with it
            log.exception("dashboard: season panel")
            return seasonview.blank(f"the season panel could not be built: {exc}")

    @staticmethod
    def _guard(g: GuardView, now: float, wall, tz) -> dict:
        try:
            return rigview.guard_view(g.name, g.status, g.state, g.problem, wall, tz,
                                      None if g.state_rx is None else now - g.state_rx)
        except Exception as exc:  # noqa: BLE001 - one odd guard state never takes the panel with it
            log.exception("dashboard: guard %s", g.name)
            return {"name": g.name, "online": False, "state": "unknown", "rig_safe": None, "unsafe": None,
                    "since": None, "text": f"could not be shown: {exc}", "last_action": None, "problem": str(exc),
                    "stale": False}

    def _rig(self, master, rig_state, guards, wall, tz, tz_label, master_row=None) -> dict:
        try:
            have = isinstance(rig_state, dict)
            r = rig_state if have else {}
            weather = rigview.weather_view(r.get("weather"), wall, tz) if have else {"safe": None, "text": "-"}
            mount = rigview.mount_view(r.get("mount")) if have else {"parked": None, "text": "-"}
            dome = rigview.dome_view(r.get("dome")) if have else {"shutter": None, "text": "-"}
            problems = {k: v for k, v in master.problems.items() if k.startswith("rig")} if master else {}
            verdict = rigview.verdict(weather, mount, dome, guards, have)
            master_online = bool(master_row and master_row["online"])
            if have and not master_online:  # the rig as the master last said it: say how old it is
                age = master_row.get("heartbeat_age") if master_row else None
                when = "" if age is None else f" {timefmt.relative(-age)}"
                verdict = {"level": "alarm" if verdict["level"] == "alarm" else "warn",
                           "text": f"master {master.name} offline: the rig as it last said{when} — {verdict['text']}"}
            return {"master": None if master is None else master.name, "master_online": master_online, "have": have,
                    "weather": weather, "mount": mount, "dome": dome, "guards": guards, "zone": tz_label,
                    "verdict": verdict, "problems": problems}
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard: rig panel")
            return {"master": None, "have": False, "weather": {"text": "-"}, "mount": {"text": "-"},
                    "dome": {"text": "-"}, "guards": guards, "zone": tz_label, "problems": {"rig": str(exc)},
                    "verdict": {"level": "warn", "text": f"the rig panel could not be built: {exc}"}}

    def _safe_row(self, v: NodeView, now: float) -> dict:
        try:
            row = self._row(v, now)
            self._row_failures.discard(v.name)
            return row
        except Exception as exc:  # noqa: BLE001 - one node's odd state never breaks the others
            if v.name not in self._row_failures:
                self._row_failures.add(v.name)
                log.exception("dashboard: node %s not shown as usual", v.name)
            row = _blank_row(v.name)
            row.update(status=v.status, problems={"state": f"could not be shown: {type(exc).__name__}: {exc}"[:300]})
            return row

    def _row(self, v: NodeView, now: float) -> dict:
        s = v.state
        online = v.status != topics.OFFLINE and v.live_rx is not None and now - v.live_rx < self.dead_after
        exposure = s.get("exposure")
        progress = None
        if exposure and exposure.get("duration") and v.state_rx is not None and online:
            progress = min(1.0, (exposure.get("progress") or 0.0) + (now - v.state_rx) / exposure["duration"])
        focus_points = len(v.vcurve["points"]) if v.vcurve and v.vcurve["status"] == "running" else None
        preview = None
        if v.preview is not None:
            age = now - v.preview_rx
            preview = {"url": f"api/frame/{v.name}.jpg?v={self._instance}-{v.preview_version}",
                       "received": ("retained on the broker (taken before the dashboard started)"
                                    if v.preview_retained else timefmt.relative(-age))}
        return {
            **_blank_row(v.name),
            "role": s.get("role"), "online": online, "status": v.status,
            "phase": s.get("phase") if online else "offline", "filter": s.get("filter"),
            "exposure": None if not exposure else {"filter": exposure.get("filter"), "duration": exposure.get("duration"),
                                                    "progress": None if progress is None else round(progress, 4)},
            "hfr": s.get("hfr"), "stars": s.get("stars"), "focuser_position": s.get("focuser_position"),
            "temperature": s.get("temperature"), "cooling": s.get("cooling"), "night": s.get("night"),
            "guiding": s.get("guiding"), "frames": s.get("frames"), "error": s.get("error"),
            "disk_free_gb": s.get("disk_free_gb"),
            "heartbeat_age": None if v.live_rx is None else round(now - v.live_rx, 1),
            "last_grade": None if not v.last_frame else {"grade": v.last_frame.get("grade"),
                                                         "reason": v.last_frame.get("grade_reason")},
            "work": long_work(s, progress, focus_points) if online else None,
            # a calibration set under way (its progress bar: kept of count), the last frame, the sets done
            "calib": rigview.calib_view(s.get("calib"), calib_text(s.get("calib")), v.calib_frame) if online else None,
            "calib_sets": list(v.calib_sets),
            "vcurve": v.vcurve,
            "preview": preview,
            "problems": dict(v.problems),
            "event_problem": v.event_problem,
        }


def _blank_row(name: str) -> dict:
    return {"name": name, "role": None, "online": False, "status": None, "phase": None, "filter": None,
            "exposure": None, "hfr": None, "stars": None, "focuser_position": None, "temperature": None,
            "cooling": None, "night": None, "guiding": None, "frames": None, "error": None, "disk_free_gb": None,
            "heartbeat_age": None, "last_grade": None, "work": None, "vcurve": None, "preview": None,
            "calib": None, "calib_sets": [], "problems": {}, "event_problem": None}


def _pick_master(nodes: dict[str, NodeView], rows: list[dict]) -> NodeView | None:
    """The master whose rig is shown: an online one first, else any that said it is the master."""
    masters = [r for r in rows if r["role"] == "master"]
    masters.sort(key=lambda r: (not r["online"], r["name"]))
    return nodes.get(masters[0]["name"]) if masters else None


def _envelope(raw: bytes) -> tuple[str | None, dict | None, object]:
    """(why it is unreadable or None, its payload, its type) of a JSON envelope."""
    try:
        data = messages.parse_json(raw)
    except ProtocolError as exc:
        return str(exc)[:200], None, None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        return "not a message envelope with a payload object", None, None
    return None, data["payload"], data.get("type")
