"""The MQTT transport: the only module in indisync that imports paho.

``MqttTransport`` wraps a paho 2.x client (``CallbackAPIVersion.VERSION2``, MQTT 5, QoS 1):

- credentials from ``MqttConfig.password_file`` and TLS options from the config;
- a Last Will (the node's ``offline`` status) set before connecting;
- subscriptions remembered and made again in the connect callback, so they return after a
  broker restart; connect hooks (publish ``online``, discovery, state) run after every connect;
- MQTT 5 so that a subscription can ask for Retain-As-Published (the broker keeps the retain flag
  on live delivery: a retained command is recognised however it arrives) and a publish can carry
  a Message Expiry Interval (the broker discards a command nobody took in time);
- paho's network thread does nothing but copy an incoming message onto a bounded queue; one
  worker thread dispatches to handlers. Every callback and handler is guarded: an exception is
  logged, never allowed to kill a thread.
- A full queue never drops a message silently. paho acknowledges a QoS 1 message to the broker
  only after ``on_message`` returns, so when the worker is behind, the network thread waits for
  room (backpressure: the broker holds the rest), bounded by half the keepalive so the
  connection survives. Only state heartbeats, which every node repeats every few seconds, are
  shed at once when the queue is full. Anything still dropped is counted, logged and reported
  through ``on_problem`` (a node turns it into an ``error`` event).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .settings import MqttConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

QOS = 1
RECONNECT_MIN_S = 1  # paho's reconnect back-off: first retry after 1 s ...
RECONNECT_MAX_S = 8  # ... doubling up to 8 s, so a restarted broker is found again within ~8 s
QUEUE_SIZE = 10_000  # incoming messages waiting for the worker; beyond this the network thread waits
SHEDDABLE_KINDS = ("state",)  # heartbeats: repeated every few seconds, so one shed when full costs nothing
OVERFLOW_REPORT_EVERY_S = 10.0  # at most one on_problem report per this many seconds


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool  # True: retained (old news, or with Retain-As-Published a live retained publish)
    received: float = 0.0  # time.time() when paho's network thread handed it over
    expiry: int | None = None  # seconds of Message Expiry Interval left, when the sender gave one


Handler = Callable[[Incoming], None]


@dataclass(frozen=True)
class Will:
    topic: str
    payload: str
    retain: bool = True


def read_password(cfg: MqttConfig) -> str | None:
    if cfg.password_file is None:
        return None
    try:
        return Path(cfg.password_file).expanduser().read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"mqtt.password_file {cfg.password_file}: {exc.strerror}. Create it holding only the password."
        ) from None


class MqttTransport:
    def __init__(self, cfg: MqttConfig, client_id: str, will: Will | None = None, queue_size: int | None = None):
        self.cfg = cfg
        self.client_id = client_id
        self.connected = threading.Event()
        self.connections = 0  # successful connects so far (>1 means reconnected)
        self.dropped = 0  # incoming messages dropped (see the module doc: never silently)
        self.shed = 0  # of those, state heartbeats shed at once on a full queue
        self.waited = 0  # messages the network thread had to wait for room for (backpressure)
        # fn(message) on paho's network thread for a queue overflow (rate-limited) or a refused
        # subscription; a node turns it into an error event
        self.on_problem: Callable[[str], None] | None = None
        self._last_overflow_report = 0.0
        self._subscriptions: dict[str, list[Handler]] = {}
        self._retain_as_published: set[str] = set()
        self._connect_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size or QUEUE_SIZE)
        self._worker: threading.Thread | None = None
        self._started = False
        self._closing = False

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if cfg.username:
            client.username_pw_set(cfg.username, read_password(cfg))
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_certs, certfile=cfg.certfile, keyfile=cfg.keyfile)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client

    # -- set-up ----------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler, retain_as_published: bool = False) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (on the worker thread), now and after every reconnect.

        ``retain_as_published``: the broker keeps the retain flag of a live publish (MQTT 5), so the
        handler sees ``retain`` True for anything published retained, not only for the retained
        store sent on subscribing. Used for commands; not for state, where a live retained heartbeat
        must read as live."""
        with self._lock:
            first = topic_filter not in self._subscriptions
            self._subscriptions.setdefault(topic_filter, []).append(handler)
            if retain_as_published:
                self._retain_as_published.add(topic_filter)
        if first and self.connected.is_set():
            self._client.subscribe(topic_filter, options=self._options(topic_filter))

    def _options(self, topic_filter: str) -> SubscribeOptions:
        return SubscribeOptions(qos=QOS, retainAsPublished=topic_filter in self._retain_as_published)

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the worker thread after every successful (re)connect."""
        with self._lock:
            self._connect_hooks.append(hook)

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        if self._started:
            return
        self._started = True
        self._closing = False
        self._worker = threading.Thread(target=self._work, name=f"mqtt-worker-{self.client_id}", daemon=True)
        self._worker.start()
        # A clean start every time: nothing queued for an old session may be delivered as new.
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive, clean_start=True)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False,
                expiry: float | None = None) -> mqtt.MQTTMessageInfo:
        """QoS 1 publish; while disconnected paho keeps the message and sends it after reconnecting.

        ``expiry``: the MQTT 5 Message Expiry Interval (seconds, rounded up to >= 1): the broker
        discards the message if it could not deliver it in that time."""
        properties = None
        if expiry is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, int(-(-expiry // 1)))
        return self._client.publish(topic, payload, qos=QOS, retain=retain, properties=properties)

    def stop(self, final: list[tuple[str, str | bytes, bool]] = (), timeout: float = 2.0) -> None:
        """Stop dispatching, publish ``final`` (topic, payload, retain) messages, wait for them
        briefly, disconnect. The worker stops first, so no connect hook (which says ``online``)
        can run after a final ``offline``."""
        if not self._started:
            return
        self._closing = True  # the worker skips whatever is still queued
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)
        infos = [self.publish(topic, payload, retain) for topic, payload, retain in final]
        for info in infos:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # not connected: the Last Will covers us
                log.warning("final message not delivered: %s", exc)
        self._started = False  # before disconnect, so on_disconnect knows this one is wanted
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def __enter__(self) -> "MqttTransport":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- paho callbacks (network thread: copy and hand off, nothing more) --------------------
    def _on_socket_open(self, client, userdata, sock) -> None:
        try:
            # Small messages, answered at once: without this, Nagle + delayed ACK add ~40 ms per hop.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Exception:  # not a TCP socket (unix, websockets): nothing to tune
            pass

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                log.warning("MQTT broker %s:%s refused %s: %s", self.cfg.host, self.cfg.port, self.client_id, reason_code)
                return
            with self._lock:
                filters = list(self._subscriptions)
                hooks = list(self._connect_hooks)
            if filters:
                client.subscribe([(f, self._options(f)) for f in filters])
            self.connections += 1
            self.connected.set()
            log.info("MQTT %s connected to %s:%s", self.client_id, self.cfg.host, self.cfg.port)
            for hook in hooks:
                self._enqueue(hook)
        except Exception:  # an exception escaping here would stop paho's loop
            log.exception("on_connect failed")

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """A refused subscription (an ACL without read, a bad filter) would leave a node deaf in silence."""
        try:
            refused = [str(code) for code in reason_codes if code.is_failure]
            if refused:
                log.error("MQTT %s: the broker refused a subscription (%s); check the broker's ACL for this user",
                          self.client_id, ", ".join(refused))
                if self.on_problem is not None:  # the node's problem channel: an error event
                    self.on_problem(f"MQTT {self.client_id}: the broker refused a subscription "
                                     f"({', '.join(refused)}); check the broker's ACL for this user")
        except Exception:
            log.exception("on_subscribe failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self.connected.clear()
            if self._started:
                log.warning("MQTT %s disconnected (%s); reconnecting", self.client_id, reason_code)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            expiry = getattr(msg.properties, "MessageExpiryInterval", None) if msg.properties else None
            self._enqueue(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain), time.time(), expiry),
                          sheddable=_sheddable(msg.topic))
        except Exception:
            log.exception("on_message failed")

    def _enqueue(self, item, sheddable: bool = False) -> None:
        """Hand ``item`` to the worker. Runs on paho's network thread; see the module doc."""
        try:
            self._queue.put_nowait(item)
            return
        except queue.Full:
            pass
        if not sheddable:
            self.waited += 1
            deadline = time.monotonic() + max(1.0, self.cfg.keepalive / 2)
            while not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    self._queue.put(item, timeout=min(left, 0.2))
                    return
                except queue.Full:
                    continue
        self.dropped += 1
        if sheddable:
            self.shed += 1
        what = getattr(item, "topic", "a connect hook")
        self._report_overflow(
            f"MQTT {self.client_id}: worker queue full ({self._queue.maxsize}); dropped {what} "
            f"({self.dropped} dropped so far, {self.shed} of them state heartbeats): a handler is stuck "
            "or the node is flooded; see this node's log"
        )

    def _report_overflow(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_overflow_report < OVERFLOW_REPORT_EVERY_S and self.dropped > 1:
            log.debug("%s", message)
            return
        self._last_overflow_report = now
        log.error("%s", message)
        if self.on_problem is not None:
            try:
                self.on_problem(message)
            except Exception:
                log.exception("overflow report failed")

    # -- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                # Bounded, so a stop() whose sentinel found the queue full still ends this thread.
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._closing:
                    return
                continue
            if item is None or self._closing:
                return
            try:
                if isinstance(item, Incoming):
                    self._dispatch(item)
                else:
                    item()
            except Exception:
                log.exception("MQTT handler failed on %r", getattr(item, "topic", item))

    def _dispatch(self, msg: Incoming) -> None:
        with self._lock:
            matches = [
                handler
                for topic_filter, handlers in self._subscriptions.items()
                if mqtt.topic_matches_sub(topic_filter, msg.topic)
                for handler in handlers
            ]
        for handler in matches:
            try:
                handler(msg)
            except Exception:
                log.exception("MQTT handler %r failed on %s", handler, msg.topic)


def _sheddable(topic: str) -> bool:
    """A state heartbeat (``prefix/node/state``): safe to shed, the node repeats it."""
    return topic.rsplit("/", 1)[-1] in SHEDDABLE_KINDS
