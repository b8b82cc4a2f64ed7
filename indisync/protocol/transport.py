"""The MQTT transport: the only module in indisync that imports paho.

``MqttTransport`` wraps a paho 2.x client (``CallbackAPIVersion.VERSION2``, MQTT 3.1.1, QoS 1):

- credentials from ``MqttConfig.password_file`` and TLS options from the config;
- a Last Will (the node's ``offline`` status) set before connecting;
- subscriptions remembered and made again in the connect callback, so they return after a
  broker restart; connect hooks (publish ``online``, discovery, state) run after every connect;
- paho's network thread does nothing but copy an incoming message onto a bounded queue; one
  worker thread dispatches to handlers. Every callback and handler is guarded: an exception is
  logged, never allowed to kill a thread.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .settings import MqttConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

QOS = 1
RECONNECT_MIN_S = 1  # paho's reconnect back-off: first retry after 1 s ...
RECONNECT_MAX_S = 8  # ... doubling up to 8 s, so a restarted broker is found again within ~8 s
QUEUE_SIZE = 10_000  # incoming messages waiting for the worker; beyond this a flood is dropped


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool  # True: delivered from the broker's retained store (old news), not live


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
    def __init__(self, cfg: MqttConfig, client_id: str, will: Will | None = None):
        self.cfg = cfg
        self.client_id = client_id
        self.connected = threading.Event()
        self.connections = 0  # successful connects so far (>1 means reconnected)
        self.dropped = 0  # incoming messages dropped because the worker queue was full
        self._subscriptions: dict[str, list[Handler]] = {}
        self._connect_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._worker: threading.Thread | None = None
        self._started = False
        self._closing = False

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
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
        self._client = client

    # -- set-up ----------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (on the worker thread), now and after every reconnect."""
        with self._lock:
            first = topic_filter not in self._subscriptions
            self._subscriptions.setdefault(topic_filter, []).append(handler)
        if first and self.connected.is_set():
            self._client.subscribe(topic_filter, qos=QOS)

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the worker thread after every successful (re)connect."""
        with self._lock:
            self._connect_hooks.append(hook)

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        if self._started:
            return
        self._started = True
        self._worker = threading.Thread(target=self._work, name=f"mqtt-worker-{self.client_id}", daemon=True)
        self._worker.start()
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """QoS 1 publish; while disconnected paho keeps the message and sends it after reconnecting."""
        return self._client.publish(topic, payload, qos=QOS, retain=retain)

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
                client.subscribe([(f, QOS) for f in filters])
            self.connections += 1
            self.connected.set()
            log.info("MQTT %s connected to %s:%s", self.client_id, self.cfg.host, self.cfg.port)
            for hook in hooks:
                self._enqueue(hook)
        except Exception:  # an exception escaping here would stop paho's loop
            log.exception("on_connect failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self.connected.clear()
            if self._started:
                log.warning("MQTT %s disconnected (%s); reconnecting", self.client_id, reason_code)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self._enqueue(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain)))
        except Exception:
            log.exception("on_message failed")

    def _enqueue(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("MQTT %s: worker queue full, %d messages dropped", self.client_id, self.dropped)

    # -- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._closing:
                continue
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
