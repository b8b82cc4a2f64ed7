"""Put every node's events, state changes, status and command outcomes into the night log.

The recorder only watches: it subscribes to ``{prefix}/+/event|state|status|reply`` through an
``MqttTransport`` it is given (the master's own, or one of its own for `indisync record`) and
executes nothing, so it records the envelope as sent, without checking the payload against this
version's schemas: fields added by a newer node (night, cooling, ...) are kept, not refused.
Heartbeats that change nothing but the exposure's progress are not written again; retained
messages delivered on subscribing are old news and are written once, marked ``"retained": true``.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from datetime import datetime, timezone

from ..errors import ProtocolError
from ..protocol import messages, topics
from .nightlog import NightLogWriter

log = logging.getLogger(__name__)

KINDS = (topics.EVENT, topics.STATE, topics.STATUS, topics.REPLY)
QUEUE_SIZE = 10_000  # entries waiting for the disk; a night writes ~10 a minute, so only a dead disk fills it
BATCH = 200  # lines per write + fsync at most


def _comparable(state: dict) -> dict:
    """A state without what changes on every heartbeat (the exposure's progress)."""
    same = copy.deepcopy(state)
    if isinstance(same.get("exposure"), dict):
        same["exposure"].pop("progress", None)
    return same


class NightRecorder:
    def __init__(self, transport, topic_tree: topics.Topics, writer: NightLogWriter):
        self.transport = transport
        self.topics = topic_tree
        self.writer = writer
        self.errors = 0
        self.dropped = 0
        self._last_state: dict[str, dict] = {}
        # The MQTT worker only queues; this thread writes, so a slow SD card (fsync) never delays
        # the master's command replies.
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._write_loop, name="night-log", daemon=True)
        self._thread.start()
        for kind in KINDS:
            transport.subscribe(topic_tree.every(kind), self._on_message)

    def note(self, type: str, **payload) -> None:
        """An entry of the recorder's own (e.g. where the report was written)."""
        now = messages.now_iso()
        self._put({"rx": now, "node": None, "kind": "note", "type": type, "ts": now, "payload": payload},
                  datetime.now(timezone.utc))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until everything queued so far is on disk."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _put(self, entry: dict, when: datetime) -> None:
        try:
            self._queue.put_nowait((entry, when))
        except queue.Full:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.error("night log %s: the disk does not keep up, %d entries dropped", self.writer.directory,
                          self.dropped)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch, markers, stop = [], [], False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self.writer.append_many(batch)
                except Exception as exc:  # noqa: BLE001 - a full disk must not end the recorder
                    self.errors += 1
                    if self.errors % 100 == 1:
                        log.error("night log %s: %s", self.writer.directory, exc)
            for marker in markers:
                marker.set()
            if stop:
                return

    def _on_message(self, msg) -> None:
        ref = self.topics.parse(msg.topic)
        if ref is None:
            return
        now = datetime.now(timezone.utc)
        entry = {"rx": messages.now_iso(now), "node": ref.node, "kind": ref.kind}
        if msg.retain:
            entry["retained"] = True
        if ref.kind == topics.STATUS:
            text = msg.payload.decode("utf-8", "replace")[:16]
            entry.update(type="status", payload={"status": text})
        else:
            try:
                env = _lenient(msg.payload)
            except ProtocolError as exc:
                self.errors += 1
                entry.update(type="unreadable", payload={"reason": str(exc)[:300]})
                self._put(entry, now)
                return
            if ref.kind == topics.STATE:
                same = _comparable(env["payload"])
                if self._last_state.get(ref.node) == same:
                    return
                self._last_state[ref.node] = same
            if ref.kind == topics.REPLY and env["payload"].get("status") in ("accepted", "progress"):
                return  # the outcome (done / failed) is what the night needs
            entry.update(type=env["type"], ts=env["ts"], id=env["id"], payload=env["payload"])
        self._put(entry, now)


def _lenient(raw: bytes) -> dict:
    data = messages.parse_json(raw)  # size cap, strict JSON
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    mtype, payload = data.get("type"), data.get("payload")
    if not isinstance(mtype, str) or not isinstance(payload, dict):
        raise ProtocolError("not an indisync envelope (type, payload)")
    return {"type": mtype[:64], "ts": str(data.get("ts"))[:40], "id": str(data.get("id"))[:64], "payload": payload}
