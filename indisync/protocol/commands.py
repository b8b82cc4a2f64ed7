"""Commands over MQTT, executed exactly once.

Delivery is at-least-once (QoS 1, paho resends after a reconnect, and the client resends a
command with the same id until it is answered); execution is at-most-once because the server
remembers ids it has seen (a bounded LRU of id -> latest reply, ``ExecutedIds``; kept on disk when
the node gives a path, so a restarted node never runs an id again) and answers a redelivery with
that reply instead of running the command again.

Never run: a command that arrives retained (however it arrives: the node subscribes with
Retain-As-Published), and a command older than its expiry by the envelope's ``ts`` (on the
sender's clock, corrected by this node's measured offset to it), so an old command queued
somewhere or replayed after a restart does not take a frame at the wrong time. ``ping`` has
no effect and is exempt from the age check.

``abort`` and ``ping`` run on their own lane, never behind the worker pool: an abort must act
while four exposures are running.

``CommandServer`` (on every node): checks a raw command, answers ``accepted``, runs the
handler on a worker pool, answers ``progress`` / ``done`` / ``failed``. A handler reads its typed
args (``CoolArgs.from_wire(command.args)``, indisync.contracts) and returns its command's result
dataclass, sent as ``to_wire()``; a result of another command's type fails the command. A message that fails
its schema is answered with an ``error`` event (and a ``failed`` reply when its id can be
read); nothing is executed. It takes publishing functions, not a transport, so it is tested
without a broker.

``CommandClient`` (on the master): sends a command to a node and waits for ``accepted`` and
the final answer with timeouts, resending while no answer has come. ``PendingCommand.reply()``
reads the answer through the command's result type (``contracts.parse_reply``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from .. import contracts
from ..contracts import CommandResult, PingResult, Reply
from ..errors import CommandFailed, CommandTimeout, IndisyncError, ProtocolError
from . import messages, topics
from .executed_ids import REMEMBERED_IDS, ExecutedIds
from .messages import Envelope

log = logging.getLogger(__name__)

WORKERS = 4  # commands running at once on the pool
FAST_LANE = ("abort", "ping")  # run on their own threads, never waiting for the pool
FAST_WORKERS = 2
NO_AGE_CHECK = ("ping",)  # no effect on the node: an old one does no harm
COMMAND_EXPIRY_S = 60.0  # default for MqttConfig.command_expiry


@dataclass(frozen=True)
class Command:
    id: str
    name: str
    sender: str
    args: dict
    ts: str
    received: float | None = None  # this node's clock when the command arrived


ProgressFn = Callable[..., None]  # progress(fraction=None, **result)
# handler(command, progress) -> its command's result dataclass; a plain dict (a stand-in's) is sent as it is
CommandHandler = Callable[[Command, ProgressFn], "CommandResult | dict | None"]


def _ping(command: Command, progress: ProgressFn) -> PingResult:
    return PingResult(pong=messages.now_iso())


def _epoch(ts: str) -> float:
    """An envelope ``ts`` (checked ISO-8601 UTC) as POSIX seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class CommandServer:
    """Serves the commands addressed to one node.

    ``publish_reply(envelope)`` and ``publish_error(message, topic, about_id)`` do the sending;
    ``handlers`` maps command names to functions ``handler(command, progress) -> result | None``,
    the result being the command's result dataclass (indisync.contracts). A handler raising fails
    the command with the exception's message as the reason.
    """

    def __init__(
        self,
        node: str,
        handlers: dict[str, CommandHandler],
        publish_reply: Callable[[Envelope], None],
        publish_error: Callable[[str, str | None, str | None], None],
        remember: int = REMEMBERED_IDS,
        workers: int = WORKERS,
        executed_path: str | Path | None = None,
        expiry: float = COMMAND_EXPIRY_S,
        clock: Callable[[], float] = time.time,
        sender_offset: Callable[[str], float | None] = lambda sender: None,
    ):
        """``executed_path``: where the executed ids are kept across restarts (None: memory only);
        ``expiry``: seconds a command stays valid after its envelope ``ts``; ``clock``: this node's
        clock (POSIX s); ``sender_offset(sender)``: this node's clock minus the sender's, if known."""
        unknown = set(handlers) - set(messages.COMMANDS)
        if unknown:
            raise ValueError(f"handlers for unknown commands {sorted(unknown)}; known: {', '.join(messages.COMMANDS)}")
        self.node = node
        self.handlers = {"ping": _ping, **handlers}
        self._publish_reply = publish_reply
        self._publish_error = publish_error
        self._seen = ExecutedIds(executed_path, remember)  # id -> latest reply payload
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"cmd-{node}")
        self._lane = ThreadPoolExecutor(max_workers=FAST_WORKERS, thread_name_prefix=f"cmd-fast-{node}")
        self.expiry = expiry
        self._clock = clock
        self._sender_offset = sender_offset
        self.executed = 0  # handlers started
        self.rejected = 0  # messages refused by the schema, as retained or as expired
        self.redelivered = 0  # duplicates answered without running

    def handle(self, raw: bytes, topic: str | None = None, retained: bool = False, received: float | None = None) -> None:
        """Take one raw message from the node's cmd topic. Never raises.

        ``retained``: the message carried the retain flag (never executed); ``received``: this
        node's clock when it arrived (now if not given)."""
        received = self._clock() if received is None else received
        if retained:
            self._reject(raw, topic, "a retained command is never executed; clear it with an empty retained "
                         "message on this topic", answer=False)
            return
        try:
            env = messages.decode(raw, kind=topics.CMD)
        except ProtocolError as exc:
            self._reject(raw, topic, str(exc))
            return
        except Exception as exc:  # a bug in a validator must not take the node down
            log.exception("command check crashed")
            self._reject(raw, topic, f"unreadable command ({type(exc).__name__})")
            return
        with self._lock:
            latest = self._seen.get(env.id)
            if latest is not None:
                self.redelivered += 1
        if latest is not None:
            log.info("command %s (%s) redelivered; answering %s again", env.id, env.type, latest["status"])
            self._send(latest)
            return
        problem = None if env.type in NO_AGE_CHECK else self._too_old(env, received)
        if problem is not None:
            self._reject(raw, topic, problem)
            return
        with self._lock:
            latest = self._seen.get(env.id)  # the same id may have come in meanwhile on another path
            if latest is None:
                handler = self.handlers.get(env.type)
                first = self._reply_payload(env.id, env.type, "accepted" if handler else "failed")
                if handler is None:
                    first["reason"] = f"command {env.type!r} is not supported by node {self.node}"
                self._seen.put(env.id, first)  # in the journal before it runs
        if latest is not None:
            self._send(latest)
            return
        self._send(first)
        if handler is not None:
            command = Command(env.id, env.type, env.sender, env.payload, env.ts, received)
            self.executed += 1
            try:
                (self._lane if env.type in FAST_LANE else self._pool).submit(self._run, handler, command)
            except RuntimeError:  # closing: the pool takes nothing more
                self._update(env.id, self._failed(command, f"node {self.node} is shutting down"))

    def close(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._lane.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            self._seen.close()

    def _too_old(self, env: Envelope, received: float) -> str | None:
        """Why ``env`` is too old (or too far in the future) to run, or None."""
        offset = self._sender_offset(env.sender)
        age = received - (offset or 0.0) - _epoch(env.ts)
        if -self.expiry <= age <= self.expiry:
            return None
        clock = (f"offset to {env.sender} {offset:+.3f} s measured" if offset is not None
                 else f"no clock offset to {env.sender} measured yet")
        return (f"expired: sent {age:+.1f} s ago by this node's clock ({clock}); commands are valid for "
                f"{self.expiry:g} s (mqtt.command_expiry). If the clocks differ, sync this Pi's clock with "
                "chrony against the master")

    # -- internals -------------------------------------------------------------------------
    def _reject(self, raw: bytes, topic: str | None, problem: str, answer: bool = True) -> None:
        self.rejected += 1
        msg_id, command = messages.peek(raw)
        log.warning("rejected a command on %s: %s", topic, problem)
        try:
            self._publish_error(f"rejected command: {problem}", topic, msg_id)
            with self._lock:
                known = msg_id is not None and msg_id in self._seen
            if answer and msg_id is not None and command is not None and not known:
                # Tell the sender at once rather than let it time out; the id is not remembered, so
                # a hostile flood costs no memory and a corrected resend is still executed.
                reply = self._reply_payload(msg_id, command, "failed")
                reply["reason"] = f"rejected: {problem}"[:500]
                self._send(reply)
        except Exception:
            log.exception("could not publish the rejection")

    def _run(self, handler: CommandHandler, command: Command) -> None:
        """On a pool thread. Whatever happens, the sender gets a final answer and the log says why:
        an exception left in a Future is never seen."""
        try:
            self._run_handler(handler, command)
        except Exception as exc:
            log.exception("command %s (%s): answering failed", command.id, command.name)
            try:
                self._update(command.id, self._failed(command, f"internal error: {type(exc).__name__}: {exc}"))
            except Exception:
                log.exception("could not even fail command %s", command.id)

    def _run_handler(self, handler: CommandHandler, command: Command) -> None:
        def progress(fraction: float | None = None, **result: Any) -> None:
            reply = self._reply_payload(command.id, command.name, "progress")
            reply["progress"] = fraction
            reply["result"] = result or None
            self._update(command.id, reply)

        try:
            result = handler(command, progress)
            final = self._reply_payload(command.id, command.name, "done")
            final["result"] = _wire_result(command.name, result)
            messages.make("reply", self.node, final).encode()  # a bad result (not JSON) fails here, not on the wire
        except IndisyncError as exc:
            final = self._failed(command, str(exc))
        except Exception as exc:  # TypeError from encode() too: a result that is not JSON
            log.exception("command %s (%s) crashed", command.id, command.name)
            final = self._failed(command, f"{type(exc).__name__}: {exc}")
        self._update(command.id, final)

    def _failed(self, command: Command, reason: str) -> dict:
        reply = self._reply_payload(command.id, command.name, "failed")
        reply["reason"] = reason[:500]
        return reply

    def _update(self, command_id: str, reply: dict) -> None:
        with self._lock:
            self._seen.put(command_id, reply)
        self._send(reply)

    @staticmethod
    def _reply_payload(command_id: str, command: str, status: str) -> dict:
        return {"command_id": command_id, "command": command, "status": status}

    def _send(self, reply: dict) -> None:
        try:
            self._publish_reply(messages.make("reply", self.node, reply))
        except Exception:
            log.exception("could not publish reply %s", reply.get("status"))


def _wire_result(name: str, result: Any) -> Any:
    """A handler's result as the reply carries it: a contract result as ``to_wire()``."""
    if not isinstance(result, CommandResult):
        return result
    expected = contracts.CONTRACTS[name][1]
    if not isinstance(result, expected):
        raise ProtocolError(f"the {name} handler answered a {type(result).__name__}; a {name} answers {expected.__name__}")
    return result.to_wire()


@dataclass
class PendingCommand:
    """One command in flight; its events are set by replies arriving on the transport's worker."""

    node: str
    envelope: Envelope
    sent_at: float
    accepted: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    last: dict | None = None  # latest reply payload
    accepted_after: float | None = None  # seconds from first send to 'accepted'
    finished_after: float | None = None  # seconds from first send to 'done' / 'failed'
    last_sent: float = 0.0
    _callbacks: list = field(default_factory=list)
    _callback_lock: threading.Lock = field(default_factory=threading.Lock)

    def add_done_callback(self, fn: Callable[["PendingCommand"], None]) -> None:
        """Call ``fn(self)`` once the final reply is in (at once if it already is)."""
        with self._callback_lock:
            if not self.finished.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def _finish(self) -> None:
        with self._callback_lock:
            self.finished.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("command callback failed")

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def command(self) -> str:
        return self.envelope.type

    def wait_accepted(self, timeout: float) -> dict:
        if not self.accepted.wait(timeout):
            raise CommandTimeout(
                f"{self.node} did not accept {self.command} ({self.id}) within {timeout:g} s; "
                "is the node running and connected to the broker?"
            )
        return self.last or {}

    def wait(self, timeout: float) -> dict:
        """The final reply payload (status done or failed); CommandTimeout if none in time."""
        if not self.finished.wait(timeout):
            raise CommandTimeout(f"{self.node} did not finish {self.command} ({self.id}) within {timeout:g} s")
        return self.last or {}

    def reply(self) -> Reply:
        """The latest reply read through the command's result type (never raises; no reply yet: a
        failed Reply saying so)."""
        return contracts.parse_reply(self.command, self.last)

    def result(self, timeout: float) -> dict | None:
        """The command's result; CommandFailed if the node answered 'failed'."""
        final = self.wait(timeout)
        if final.get("status") == "failed":
            raise CommandFailed(f"{self.node} failed {self.command}: {final.get('reason')}")
        return final.get("result")


class CommandClient:
    """Sends commands from ``sender`` (the master) and matches the replies.

    A command without ``accepted`` is resent (same id) every ``resend_every`` s; an accepted one
    still running every ``poll_every`` s, which recovers a final reply lost in a broker restart.
    """

    def __init__(self, transport, topic_tree: topics.Topics, sender: str, resend_every: float = 1.0, poll_every: float = 5.0,
                 expiry: float | None = COMMAND_EXPIRY_S, clock_iso: Callable[[], str] | None = None):
        """``expiry``: each publish's MQTT Message Expiry Interval (the node also refuses a command
        whose ``ts`` is older than its own ``mqtt.command_expiry``); ``clock_iso``: this node's clock
        for the envelope ``ts``."""
        self.transport = transport
        self.topics = topic_tree
        self.sender = sender
        self.expiry = expiry
        self._clock_iso = clock_iso or messages.now_iso
        self.resend_every = resend_every
        self.poll_every = poll_every
        self._pending: dict[str, PendingCommand] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        transport.subscribe(topic_tree.every(topics.REPLY), self._on_reply)
        self._resender = threading.Thread(target=self._resend_loop, name=f"cmd-resend-{sender}", daemon=True)
        self._resender.start()

    def send(self, node: str, command: str, args: dict | None = None, id: str | None = None) -> PendingCommand:
        env = messages.make(command, self.sender, args or {}, id=id, ts=self._clock_iso())
        now = time.monotonic()
        pending = PendingCommand(node, env, now, last_sent=now)
        with self._lock:
            self._pending[env.id] = pending
        self.transport.publish(self.topics.cmd(node), env.encode(), expiry=self.expiry)
        return pending

    def call(self, node: str, command: str, args: dict | None = None, accept_timeout: float = 5.0, timeout: float = 60.0) -> dict | None:
        """Send, wait for ``accepted`` then for the result; raises CommandTimeout or CommandFailed."""
        pending = self.send(node, command, args)
        try:
            pending.wait_accepted(accept_timeout)
            return pending.result(timeout)
        finally:
            self.forget(pending)

    def forget(self, pending: PendingCommand) -> None:
        with self._lock:
            self._pending.pop(pending.id, None)

    def close(self) -> None:
        self._stop.set()
        self._resender.join(2.0)

    # -- internals -------------------------------------------------------------------------
    def _on_reply(self, msg) -> None:
        ref = self.topics.parse(msg.topic)
        try:
            env = messages.decode(msg.payload, kind=topics.REPLY)
        except ProtocolError as exc:
            log.warning("ignored a malformed reply on %s: %s", msg.topic, exc)
            return
        with self._lock:
            pending = self._pending.get(env.payload["command_id"])
        if pending is None or ref is None or ref.node != pending.node or env.sender != pending.node:
            return  # someone else's command, a late duplicate, or a reply from the wrong node
        status = env.payload["status"]
        if pending.finished.is_set():
            return
        pending.last = env.payload
        if not pending.accepted.is_set():
            pending.accepted_after = time.monotonic() - pending.sent_at
            pending.accepted.set()
        if status in ("done", "failed"):
            pending.finished_after = time.monotonic() - pending.sent_at
            with self._lock:
                self._pending.pop(pending.id, None)
            pending._finish()

    def _resend_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                now = time.monotonic()
                with self._lock:
                    pendings = list(self._pending.values())
                for p in pendings:
                    interval = self.poll_every if p.accepted.is_set() else self.resend_every
                    if not p.finished.is_set() and now - p.last_sent >= interval:
                        p.last_sent = now
                        self.transport.publish(self.topics.cmd(p.node), p.envelope.encode(), expiry=self.expiry)
            except Exception:
                log.exception("command resend failed")
