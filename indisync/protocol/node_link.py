"""``NodeLink``: everything one node says and hears on MQTT, for the node runtime to use.

- ``status``: ``online`` (retained) after every connect; ``offline`` as the Last Will and before
  a clean shutdown;
- ``state``: retained envelope, published on every change and every ``heartbeat`` seconds;
- ``event``: one envelope per event, schema-checked before it leaves;
- ``cmd``: served by a CommandServer (at most once, answers on ``reply``), subscribed with
  Retain-As-Published so a retained command is refused however it arrives; the ids run are kept
  in ``executed_path`` across restarts; commands older than ``mqtt.command_expiry`` are refused;
- a slave measures its clock offset to the master (protocol/clock.py) and publishes it in its
  state (``clock_offset_s``, ``clock_rtt_s``), warning once per crossing of ``mqtt.clock_warn``;
- Home Assistant discovery after every connect and when ``homeassistant/status`` says online.

    link = NodeLink(cfg.mqtt, cfg.node.name, cfg.node.role, handlers={"expose": on_expose})
    link.start()
    link.update_state(phase="exposing", exposure={...})
    link.event("exposure_done", exposure_id="b1-3", status="ok", file="ota1_M31_L_300s_0003.fits")
    link.close()
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from .settings import MqttConfig
from ..errors import ProtocolError
from . import messages, topics
from .clock import ClockEstimate, ClockResponder, ClockSync, NodeClock
from .commands import CommandClient, CommandHandler, CommandServer
from .discovery import discovery_messages
from .registry import NodeRegistry
from .transport import Incoming, MqttTransport, Will

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_IMAGE_BYTES = 1024 * 1024  # a V-curve PNG is ~30 KB; brokers and HA handle far less than a raw frame


class NodeLink:
    def __init__(
        self,
        cfg: MqttConfig,
        node: str,
        role: str,
        handlers: dict[str, CommandHandler] | None = None,
        version: str = __version__,
        client_id: str | None = None,
        executed_path: str | Path | None = None,
        clock: NodeClock | None = None,
    ):
        """``executed_path``: the journal of command ids run (None: memory only, for tests and
        stand-ins); ``clock``: this node's clock (a skewed one only in tests)."""
        self.cfg = cfg
        self.node = node
        self.role = role
        self.version = version
        self.clock = clock or NodeClock()
        self.topics = topics.Topics(cfg.topic_prefix, cfg.discovery_prefix)
        self.transport = MqttTransport(
            cfg, client_id or f"indisync-{node}", will=Will(self.topics.status(node), topics.OFFLINE, retain=True)
        )
        self.transport.on_problem = lambda message: self._publish_error(message, None, None)
        self._state = messages.make(
            "state", node, {"role": role, "phase": "idle", "frames": 0, "version": version}
        ).payload
        self._state_lock = threading.Lock()
        self._publish_lock = threading.Lock()  # one state publish at a time, in snapshot order
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.clock_sync: ClockSync | None = None
        self._clock_warned = False
        self.commands = CommandServer(
            node, handlers or {}, self._publish_reply, self._publish_error, executed_path=executed_path,
            expiry=cfg.command_expiry, clock=self.clock.time, sender_offset=self.offset_to,
        )
        self.transport.subscribe(self.topics.cmd(node), self._on_command, retain_as_published=True)
        self.transport.subscribe(self.topics.ha_status, self._on_ha_status)
        self.transport.on_connect(self._announce)
        if role == "slave":
            self.clock_sync = ClockSync(self.transport, self.topics, node, self.clock, self._on_clock_estimate)
        else:  # the master's clock is the reference every slave measures itself against
            self.clock_responder = ClockResponder(self.transport, self.topics, node, self.clock)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, wait: float | None = None) -> bool:
        """Connect (in the background) and start the heartbeat; with ``wait``, wait that long for the
        first connection and return whether it came."""
        self.transport.start()
        if self.clock_sync is not None:
            self.clock_sync.start()
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{self.node}", daemon=True)
            self._heartbeat.start()
        return self.transport.wait_connected(wait) if wait else self.transport.connected.is_set()

    def close(self) -> None:
        """Say ``offline`` (retained), disconnect cleanly, stop the command workers."""
        self._stop.set()
        if self.clock_sync is not None:
            self.clock_sync.stop()
        if self._heartbeat is not None:
            self._heartbeat.join(2.0)  # no state may follow the final 'offline'
        self.transport.stop(final=[(self.topics.status(self.node), topics.OFFLINE, True)])
        self.commands.close()

    def __enter__(self) -> "NodeLink":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the node says -------------------------------------------------------------------
    @property
    def state(self) -> dict:
        with self._state_lock:
            return copy.deepcopy(self._state)

    def update_state(self, **fields) -> None:
        """Change state fields (schema-checked) and publish at once if anything changed."""
        with self._state_lock:
            merged = {**self._state, **fields}
            checked = messages.make("state", self.node, merged, ts=self.clock.iso()).payload  # raises on a bad field
            changed = checked != self._state
            self._state = checked
        if changed:
            self.publish_state()

    def publish_state(self) -> None:
        # Snapshot and publish under one lock: the connect hook (worker thread) and update_state (any
        # thread) both publish, and a snapshot taken first but sent last would leave an old state
        # retained on the broker (seen: a slave's retained state said filter null after "Red").
        with self._publish_lock:
            with self._state_lock:
                payload = copy.deepcopy(self._state)
            exposure = payload.get("exposure")
            if exposure and exposure.get("duration"):
                start = datetime.fromisoformat(exposure["start"].replace("Z", "+00:00"))
                elapsed = (datetime.fromtimestamp(self.clock.time(), timezone.utc) - start).total_seconds()
                exposure["progress"] = round(min(1.0, max(0.0, elapsed / exposure["duration"])), 3)
            env = messages.make("state", self.node, payload, ts=self.clock.iso())
            self.transport.publish(self.topics.state(self.node), env.encode(), retain=True)

    def event(self, type: str, **payload) -> messages.Envelope:
        """Publish one event; ProtocolError if ``type`` is not an event or the payload breaks its schema."""
        if messages.SCHEMAS.get(type, ("",))[0] != topics.EVENT:
            raise ProtocolError(f"{type!r} is not an event; events: {', '.join(messages.EVENTS)}")
        env = messages.make(type, self.node, payload, ts=self.clock.iso())
        self.transport.publish(self.topics.event(self.node), env.encode())
        return env

    def publish_image(self, name: str, data: bytes) -> None:
        """Retained raw image bytes on ``{prefix}/{node}/image/{name}`` (Home Assistant's image entity)."""
        if len(data) > MAX_IMAGE_BYTES:
            raise ProtocolError(f"image {name} of {len(data)} bytes; allowed at most {MAX_IMAGE_BYTES}")
        self.transport.publish(self.topics.image(self.node, name), data, retain=True)

    def error(self, message: str, topic: str | None = None, about: str | None = None) -> None:
        self._publish_error(message, topic, about)

    # -- helpers for the master ------------------------------------------------------------------
    def command_client(self, **kwargs) -> CommandClient:
        kwargs.setdefault("expiry", self.cfg.command_expiry)
        return CommandClient(self.transport, self.topics, self.node, clock_iso=self.clock.iso, **kwargs)

    # -- the clock -------------------------------------------------------------------------------
    @property
    def clock_offset(self) -> float | None:
        """This node's clock minus the master's, in s: 0 on the master, None until measured."""
        if self.role == "master":
            return 0.0
        return self.state.get("clock_offset_s")

    def offset_to(self, sender: str) -> float | None:
        """This node's clock minus ``sender``'s, when known (the master's offset, on a slave)."""
        if self.clock_sync is not None and sender == self.clock_sync.master:
            return self.state.get("clock_offset_s")
        return None

    def _on_clock_estimate(self, estimate: ClockEstimate, master: str) -> None:
        # + 0.0: an offset that rounds to zero from below is -0.0, which JSON, Home Assistant, status
        # and CLKOFFS would show as "-0.0"; -0.0 + 0.0 is 0.0, every other value is unchanged.
        self.update_state(clock_offset_s=round(estimate.offset_s, 4) + 0.0, clock_rtt_s=round(estimate.rtt_s, 4) + 0.0)
        # A sample's offset is wrong by at most half its round trip (all the delay on one side), so
        # warn only when the offset is past the limit by more than that: a slow first sample on a
        # busy node (its request stuck behind a flood) must not raise a false alarm.
        off = abs(estimate.offset_s) - estimate.rtt_s / 2 > self.cfg.clock_warn
        if off and not self._clock_warned:
            message = (f"clock of {self.node} is {estimate.offset_s:+.3f} s off the master's ({master}; "
                       f"measured over a {estimate.rtt_s * 1000:.1f} ms round trip; warning above "
                       f"{self.cfg.clock_warn:g} s): DATE-OBS is off by as much. Fix: sync this Pi's clock "
                       "with chrony against the master")
            log.warning("%s", message)
            self._publish_error(message, None, None)
            self._clock_warned = True
        elif self._clock_warned and abs(estimate.offset_s) <= self.cfg.clock_warn:
            log.info("clock of %s back within %g s of the master's (%+.3f s)", self.node, self.cfg.clock_warn,
                     estimate.offset_s)
            self._clock_warned = False

    def registry(self) -> NodeRegistry:
        registry = NodeRegistry(self.cfg.dead_after)
        registry.attach(self.transport, self.topics)
        return registry

    # -- internals ---------------------------------------------------------------------------------
    def _announce(self) -> None:
        self.transport.publish(self.topics.status(self.node), topics.ONLINE, retain=True)
        self._publish_discovery()
        self.publish_state()

    def _publish_discovery(self) -> None:
        for topic, config in discovery_messages(self.topics, self.node, self.role, self.version):
            self.transport.publish(topic, config)

    def _on_ha_status(self, msg: Incoming) -> None:
        if msg.payload.strip() == b"online":
            log.info("Home Assistant came online; publishing discovery again")
            self._publish_discovery()

    def _on_command(self, msg: Incoming) -> None:
        received = self.clock.from_system(msg.received) if msg.received else None
        self.commands.handle(msg.payload, msg.topic, retained=msg.retain, received=received)

    def _publish_reply(self, env: messages.Envelope) -> None:
        self.transport.publish(self.topics.reply(self.node), env.encode())

    def _publish_error(self, message: str, topic: str | None, about: str | None) -> None:
        clean = _CONTROL.sub("?", message)[:1000]
        topic = _CONTROL.sub("?", topic)[:256] if topic else None
        try:
            self.event("error", message=clean, topic=topic, about=about)
        except ProtocolError:
            log.exception("could not publish error event %r", clean)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.cfg.heartbeat):
            try:
                if self.transport.connected.is_set():
                    self.publish_state()
            except Exception:
                log.exception("heartbeat failed")
