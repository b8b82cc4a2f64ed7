"""`indisync guard` at work: look at the rig about every ``guard.interval`` s, decide (decide.py),
act when the decision says so (rig.py), and say so on MQTT and to the phones.

Its own INDI connection (rig.py), its own MQTT connection (Last Will ``offline`` on
``{prefix}/guard/{name}/status``), its own alarms (indisync.alerts). It reads the master's heartbeat
from the retained status and state every node publishes (protocol.registry), never from the night.
Every wait is bounded: a look reads snapshots only; connecting is bounded by indi.connect_timeout;
the park and the close by indi.move_timeout, in a thread of their own, so the guard keeps publishing
its state (and re-deciding) while it acts. A failed attempt is tried again every ``guard.retry`` s
while the conditions last.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import Callable

from .. import __version__
from ..alerts import Alarm, Alerter
from ..errors import ProtocolError
from ..protocol import messages, topics
from ..protocol.discovery import guard_discovery_messages
from ..protocol.registry import NodeRegistry
from ..protocol.schema import fit_text
from ..protocol.transport import Incoming, MqttTransport, Will
from ..timezones import site_zone
from .decide import Decision, Limits, Memory, Reading, decide, end_at_passed, weather_safe
from .rig import GuardRig, Outcome, Where
from .settings import parse_camera

log = logging.getLogger(__name__)

DEFAULT_SUN_LIMIT_DEG = -12.0  # without a night: section, as NightSettings' own default
SUN_REFRESH_S = 30.0  # the sun moves at most 0.25 degrees a minute: one computation per half minute


def limits_for(cfg) -> Limits:
    """The decision's limits from a config: grace, safety.stale_after, and the sun's. With sky flats
    (flats.sky) the sun's limit is at least flats.sun_high, the flats' upper sun altitude: the master
    has the mount out in twilight for them, and the guard must not park it for the sun alone
    (guard.sun_altitude, when set, still decides)."""
    night = getattr(cfg, "night", None)
    if night is not None:
        # Never above the night's own start: a night that unparks with the sun at its start altitude
        # (start above end) must not be parked by the guard for the sun alone.
        sun_limit = max(night.start_sun_altitude, night.end_sun_altitude)
        window_end = night.end_sun_altitude
    else:
        sun_limit = window_end = DEFAULT_SUN_LIMIT_DEG
    flats = getattr(cfg, "flats", None)
    if flats is not None and flats.sky is not None:
        sun_limit = max(sun_limit, flats.sun_high)
    if cfg.guard.sun_altitude is not None:
        sun_limit = cfg.guard.sun_altitude
    return Limits(grace=cfg.guard.grace, stale_after=cfg.safety.stale_after, sun_limit_deg=sun_limit,
                  window_end_sun_deg=window_end)


def rig_for(cfg) -> GuardRig:
    indi, guard = cfg.indi, cfg.guard
    where = Where(guard.indi_host or indi.host, guard.indi_port or indi.port)
    cameras: list[tuple[str, Where]] = []
    if guard.cameras is None:
        if indi.camera:
            cameras.append((indi.camera, Where(indi.host, indi.port)))  # the node's own camera, where the node has it
    else:
        for entry in guard.cameras:
            device, host, port = parse_camera(entry)
            cameras.append((device, Where(host, port) if host else where))
    return GuardRig(where, indi.weather, indi.mount, indi.dome, cameras, connect_timeout=indi.connect_timeout,
                    property_timeout=indi.property_timeout, move_timeout=indi.move_timeout)


def _gist(conditions) -> tuple[str, ...]:
    """The conditions without their numbers (an age or an altitude changes on every look)."""
    return tuple(re.sub(r"[-+]?\d+(\.\d+)?", "#", c) for c in conditions)


def iso(epoch: float) -> str:
    return messages.now_iso(datetime.fromtimestamp(epoch, timezone.utc))


class Guard:
    def __init__(self, cfg, rig: GuardRig | None = None, alerter: Alerter | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.cfg = cfg
        self.name = cfg.guard.name
        self.limits = limits_for(cfg)
        self.rig = rig or rig_for(cfg)
        self.mount_first = bool(getattr(getattr(cfg, "dome", None), "requires_mount_parked", False))
        self.master = cfg.guard.master or (cfg.node.name if cfg.node.role == "master" else None)
        self._clock, self._wall = clock, wall
        self.topics = topics.Topics(cfg.mqtt.topic_prefix, cfg.mqtt.discovery_prefix)
        self.transport = MqttTransport(cfg.mqtt, client_id=f"indisync-guard-{self.name}",
                                       will=Will(self.topics.guard(self.name, topics.STATUS), topics.OFFLINE))
        self.registry = NodeRegistry(cfg.mqtt.dead_after, clock=clock)
        self.registry.attach(self.transport, self.topics)
        self.transport.subscribe(self.topics.ha_status, self._on_ha_status)
        self.transport.on_connect(self._announce)
        self.alerter = alerter or Alerter(cfg.alerts, source=self.name, publish=self._publish_alarm)
        self.memory = Memory()
        self.decision: Decision | None = None
        self.started_at = clock()
        self._lock = threading.Lock()
        self._state = "armed"
        self._since = wall()
        self._payload: dict | None = None
        self._published_key = None
        self._published_at = 0.0
        self._last_action: dict | None = None
        self._attempt: threading.Thread | None = None
        self._attempt_ended: float | None = None
        self._sun: float | None = None  # degrees, from the sun thread; None: unknown
        self._sun_thread: threading.Thread | None = None
        self._connector: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    # ---- life --------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        """Guard until ``stop`` is set; 0 then. Never ends on a device or broker problem."""
        self._stop = stop
        log.info("guard %s up: watching %s (weather %r, mount %r, dome %r), master %s, grace %g s, sun above "
                 "%g deg unsafe", self.name, self.rig.where, self.rig.names["weather"], self.rig.names["mount"],
                 self.rig.names["dome"], self.master or "(the node saying role master)", self.limits.grace,
                 self.limits.sun_limit_deg)
        self.alerter.start()
        self.transport.start()
        try:  # the first look sees the devices: connect once here (bounded), then in the background
            self.rig.ensure()
        except Exception:  # noqa: BLE001 - the connector tries again
            log.exception("guard: connecting to indiserver failed")
        self._sun_thread = threading.Thread(target=self._sun_loop, name="guard-sun", daemon=True)
        self._sun_thread.start()
        self._connector = threading.Thread(target=self._connect_loop, name="guard-connect", daemon=True)
        self._connector.start()
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - the guard never dies of one bad look
                    log.exception("guard: a look failed; looking again")
                self._wake.wait(self.cfg.guard.interval)
                self._wake.clear()
        finally:
            self.close()
        return 0

    def close(self) -> None:
        self._stop.set()
        if self._attempt is not None and self._attempt.is_alive():
            log.warning("guard: stopping while an attempt to park and close is under way (it goes on "
                        "in the driver)")
        self.transport.stop(final=[(self.topics.guard(self.name, topics.STATUS), topics.OFFLINE, True)])
        self.registry.stop()
        self.alerter.close(5.0)
        self.rig.close()

    # ---- one look ----------------------------------------------------------------------------------
    def reading(self) -> Reading:
        now = self._clock()
        master_online = self.master_online(now)
        end_at = getattr(getattr(self.cfg, "night", None), "end_at", None)
        passed = end_at_passed(end_at, datetime.fromtimestamp(self._wall(), timezone.utc), site_zone(self.cfg)) \
            if end_at else False
        return Reading(now=now, weather=self.rig.weather(now), mount=self.rig.mount(), dome=self.rig.dome(),
                       sun_alt_deg=self._sun, master_online=master_online, master=self.master_name(),
                       end_at_passed=passed, blind=self.rig.blind())

    def step(self) -> Decision:
        reading = self.reading()
        decision = decide(reading, self.limits, self.memory)
        before, self.memory, self.decision = self.decision, decision.memory, decision
        if _gist(decision.conditions) != _gist(before.conditions if before else ()):
            if decision.unsafe:
                log.warning("guard: unsafe: %s; the rig: %s", "; ".join(decision.conditions),
                            " and ".join(decision.out) or "safe")
            elif before is not None:
                log.info("guard: the conditions are safe again")
        if decision.started:
            log.error("guard: ACTING: %s", decision.reason)
            self._alarm("guard_acted", "critical", "guard acting: parking the mount and closing the dome",
                        f"{decision.reason}. The guard {self.name} aborts the exposures it can reach, parks "
                        "the mount and closes the dome, and tries again until both read safe. Check why the "
                        "master did not (is it running? `indisync status`), and the rig.")
        if decision.act and (self._attempt is None or not self._attempt.is_alive()):
            due = self._attempt_ended is None or reading.now - self._attempt_ended >= self.cfg.guard.retry
            if decision.started or due:
                self._attempt = threading.Thread(target=self._attempt_run, args=(decision.reason or "",),
                                                 name="guard-act", daemon=True)
                self._attempt.start()
        self._publish_state(reading, decision)
        return decision

    def master_name(self) -> str | None:
        if self.master:
            return self.master
        masters = [n for n in self.registry.nodes() if n.role == "master"]
        live = [n for n in masters if n.alive]
        pick = live or masters
        return pick[0].name if pick else None

    def master_online(self, now: float) -> bool | None:
        """True: its heartbeat is live; False: offline or silent past mqtt.dead_after (or none seen
        once mqtt.dead_after has passed since we started); None: not known (no broker, just started)."""
        if not self.transport.connected.is_set():
            return None
        name = self.master_name()
        info = self.registry.get(name) if name else None
        young = now - self.started_at < self.cfg.mqtt.dead_after
        if info is None:
            return None if young else False
        if self.registry.is_alive(info.name):
            return True
        if info.status == topics.OFFLINE:
            return False
        if info.last_heartbeat is None and young:
            return None  # only its retained state so far: its next heartbeat is due within dead_after
        return False

    # ---- acting ----------------------------------------------------------------------------------------
    def _attempt_run(self, why: str) -> None:
        try:
            if not self.rig.connected:
                self.rig.ensure()
            outcome = self.rig.secure(self.mount_first)
        except Exception as exc:  # noqa: BLE001 - never dies silently: named, tried again
            log.exception("guard: the attempt to park and close failed")
            outcome = Outcome(parked=False if self.rig.names["mount"] else None,
                              closed=False if self.rig.names["dome"] else None, problems=[f"{exc}"])
        with self._lock:
            self._attempt_ended = self._clock()
            self._last_action = {"at": iso(self._wall()), "why": fit_text(why),
                                 "parked": outcome.parked, "closed": outcome.closed}
        aborted = f"; aborted the exposure of {', '.join(outcome.aborted)}" if outcome.aborted else ""
        if outcome.problems:
            log.error("guard: the rig is not safe yet: %s%s", "; ".join(outcome.problems), aborted)
            self._alarm("guard_failed", "critical", "guard could not make the rig safe",
                        f"{'; '.join(outcome.problems)}. The guard {self.name} tries again every "
                        f"{self.cfg.guard.retry:g} s while the conditions last ({why}). Go and look: the mount or "
                        "the dome may need a hand.")
        else:
            log.warning("guard: parked and closed%s", aborted)
            self._alarm("guard_secured", "warning", "guard parked the mount and closed the dome",
                        f"The rig reads safe now{aborted}. Why: {why}. The guard never unparks or opens: the "
                        "master resumes the night when it can, or you do.")
        self._wake.set()

    # ---- what it says -------------------------------------------------------------------------------
    def _alarm(self, cause: str, level: str, title: str, body: str) -> None:
        self.alerter.raise_alarm(Alarm(cause, level, title, body))

    def _publish_alarm(self, alarm: Alarm) -> None:
        env = messages.make("alarm", self.name, alarm.event_payload())
        self.transport.publish(self.topics.guard(self.name, topics.EVENT), env.encode())

    def payload(self, reading: Reading, decision: Decision) -> dict:
        weather = None
        if reading.weather is not None:
            w = reading.weather
            weather = {"safe": weather_safe(w, self.limits), "age_s": None if w.age_s is None else round(w.age_s, 1)}
        with self._lock:
            last_action = dict(self._last_action) if self._last_action else None
        sun = None if reading.sun_alt_deg is None else round(max(-90.0, min(90.0, reading.sun_alt_deg)), 2)
        return {
            "state": decision.state,
            "since": iso(self._since),
            "reason": fit_text(decision.reason) if decision.reason else None,
            "rig_safe": decision.rig_safe,
            "unsafe": decision.unsafe,
            "weather": weather,
            "mount": None if reading.mount is None else {"parked": reading.mount.parked},
            "dome": None if reading.dome is None else {"closed": reading.dome.closed},
            "sun_alt_deg": sun,
            "master_online": reading.master_online,
            "last_action": last_action,
        }

    def _publish_state(self, reading: Reading, decision: Decision) -> None:
        if decision.state != self._state:
            log.info("guard: %s -> %s%s", self._state, decision.state,
                     f": {decision.reason}" if decision.reason else "")
            self._state, self._since = decision.state, self._wall()
        payload = self.payload(reading, decision)
        key = {k: v for k, v in payload.items() if k not in ("sun_alt_deg",)}
        key["weather"] = None if payload["weather"] is None else payload["weather"]["safe"]
        now = self._clock()
        with self._lock:
            self._payload = payload
            due = key != self._published_key or now - self._published_at >= self.cfg.guard.publish_every
        if due and self.transport.connected.is_set():
            self._send_state(payload)
            self._published_key, self._published_at = key, now

    def _send_state(self, payload: dict) -> None:
        try:
            env = messages.make("guard_state", self.name, payload)
        except ProtocolError:
            log.exception("guard: our own guard_state breaks its schema")
            return
        self.transport.publish(self.topics.guard(self.name, topics.STATE), env.encode(), retain=True)

    def _announce(self) -> None:
        self.transport.publish(self.topics.guard(self.name, topics.STATUS), topics.ONLINE, retain=True)
        self._publish_discovery()
        with self._lock:
            payload = self._payload
        if payload is not None:
            self._send_state(payload)

    def _publish_discovery(self) -> None:
        for topic, config in guard_discovery_messages(self.topics, self.name, __version__):
            self.transport.publish(topic, config)

    def _on_ha_status(self, msg: Incoming) -> None:
        if msg.payload.strip() == b"online":
            self._publish_discovery()

    # ---- the INDI connection -------------------------------------------------------------------------
    def _connect_loop(self) -> None:
        """(Re)connect, and connect missing devices, every guard.retry s while anything is missing: in
        a thread of its own, so that a connect (up to indi.connect_timeout) never delays a look."""
        while not self._stop.is_set():
            try:
                if not self.rig.connected or self.rig.problem:
                    problem = self.rig.ensure()
                    if problem:
                        log.warning("guard: %s; trying again in %g s", problem, self.cfg.guard.retry)
                    self._wake.set()
            except Exception:  # noqa: BLE001 - the thread never dies silently
                log.exception("guard: connecting to indiserver failed")
            self._stop.wait(self.cfg.guard.retry if (not self.rig.connected or self.rig.problem) else
                            min(self.cfg.guard.retry, 1.0))

    # ---- the sun -----------------------------------------------------------------------------------
    def _site(self) -> tuple[float, float, float] | None:
        site = getattr(self.cfg, "site", None)
        if site is not None:
            return site.latitude, site.longitude_east, site.elevation
        try:
            return self.rig.site()
        except Exception:  # noqa: BLE001 - no site: the sun is unknown, said in the state
            return None

    def _sun_loop(self) -> None:
        from .sun import sun_altitude_deg  # astropy: loaded here, never on the look's path

        warned = False
        while not self._stop.is_set():
            try:
                site = self._site()
                if site is None:
                    if not warned:
                        log.warning("guard: no site (no site: section, and the mount gives no GEOGRAPHIC_COORD): "
                                    "the sun is not watched until one is known")
                        warned = True
                    self._sun = None
                else:
                    self._sun = sun_altitude_deg(*site)
            except Exception:  # noqa: BLE001 - the thread never dies silently; the sun counts as unknown
                log.exception("guard: could not compute the sun's altitude")
                self._sun = None
            self._stop.wait(SUN_REFRESH_S if self._sun is not None else min(SUN_REFRESH_S, 5.0))
