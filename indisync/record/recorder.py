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
from datetime import datetime, timezone

from ..errors import ProtocolError
from ..protocol import messages, topics
from .nightlog import NightLogWriter

log = logging.getLogger(__name__)

KINDS = (topics.EVENT, topics.STATE, topics.STATUS, topics.REPLY)


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
        self._last_state: dict[str, dict] = {}
        for kind in KINDS:
            transport.subscribe(topic_tree.every(kind), self._on_message)

    def note(self, type: str, **payload) -> None:
        """An entry of the recorder's own (e.g. where the report was written)."""
        now = messages.now_iso()
        self.writer.append({"rx": now, "node": None, "kind": "note", "type": type, "ts": now, "payload": payload})

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
                self.writer.append(entry, now)
                return
            if ref.kind == topics.STATE:
                same = _comparable(env["payload"])
                if self._last_state.get(ref.node) == same:
                    return
                self._last_state[ref.node] = same
            if ref.kind == topics.REPLY and env["payload"].get("status") in ("accepted", "progress"):
                return  # the outcome (done / failed) is what the night needs
            entry.update(type=env["type"], ts=env["ts"], id=env["id"], payload=env["payload"])
        try:
            self.writer.append(entry, now)
        except OSError as exc:  # a full disk must not stop the node; say it once in a while
            self.errors += 1
            if self.errors % 100 == 1:
                log.error("night log %s: %s", self.writer.directory, exc)


def _lenient(raw: bytes) -> dict:
    data = messages.parse_json(raw)  # size cap, strict JSON
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    mtype, payload = data.get("type"), data.get("payload")
    if not isinstance(mtype, str) or not isinstance(payload, dict):
        raise ProtocolError("not an indisync envelope (type, payload)")
    return {"type": mtype[:64], "ts": str(data.get("ts"))[:40], "id": str(data.get("id"))[:64], "payload": payload}
