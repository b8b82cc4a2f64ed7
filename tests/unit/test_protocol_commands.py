"""CommandServer without a broker: accepted/done/failed, exactly-once on redelivery, refusals."""

from __future__ import annotations

import json
import threading
import time

import pytest

from indisync.errors import FocusError
from indisync.protocol import messages
from indisync.protocol.commands import CommandServer


class Wire:
    """Collects what a server publishes."""

    def __init__(self):
        self.replies: list[dict] = []
        self.errors: list[tuple] = []
        self.changed = threading.Condition()

    def reply(self, env):
        assert env.type == "reply" and env.sender == "ota2"
        with self.changed:
            self.replies.append(env.payload)
            self.changed.notify_all()

    def error(self, message, topic, about):
        with self.changed:
            self.errors.append((message, topic, about))
            self.changed.notify_all()

    def statuses(self, command_id):
        return [r["status"] for r in self.replies if r["command_id"] == command_id]

    def wait_for(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; replies={self.replies} errors={self.errors}"
                self.changed.wait(left)


@pytest.fixture
def wire():
    return Wire()


def server(wire, **handlers):
    return CommandServer("ota2", handlers, wire.reply, wire.error)


def cmd(name="expose", payload=None, id="c1"):
    return messages.make(name, "ota1", payload if payload is not None else {"duration": 5}, id=id).encode()


def test_accepted_then_done_with_result(wire):
    runs = []
    srv = server(wire, expose=lambda c, p: runs.append(c.args["duration"]) or {"file": "a.fits"})
    srv.handle(cmd())
    wire.wait_for(lambda: "done" in wire.statuses("c1"))
    assert wire.statuses("c1") == ["accepted", "done"]
    assert wire.replies[-1]["result"] == {"file": "a.fits"} and runs == [5.0]


def test_redelivery_is_answered_again_never_run_twice(wire):
    release = threading.Event()
    runs = []

    def expose(c, progress):
        runs.append(c.id)
        release.wait(5)
        return None

    srv = server(wire, expose=expose)
    srv.handle(cmd())
    srv.handle(cmd())  # while running: answered 'accepted' again
    release.set()
    wire.wait_for(lambda: "done" in wire.statuses("c1"))
    srv.handle(cmd())  # after done: answered 'done' again
    wire.wait_for(lambda: wire.statuses("c1").count("done") == 2)
    assert runs == ["c1"]
    assert wire.statuses("c1") == ["accepted", "accepted", "done", "done"]
    assert srv.redelivered == 2 and srv.executed == 1


def test_progress_and_failure_reason(wire):
    def autofocus(c, progress):
        progress(0.5, position=1200)
        raise FocusError("minimum outside the scanned range")

    srv = server(wire, autofocus=autofocus)
    srv.handle(cmd("autofocus", {}))
    wire.wait_for(lambda: "failed" in wire.statuses("c1"))
    assert wire.statuses("c1") == ["accepted", "progress", "failed"]
    assert wire.replies[1]["progress"] == 0.5 and wire.replies[1]["result"] == {"position": 1200}
    assert "minimum outside" in wire.replies[-1]["reason"]


def test_a_crashing_handler_fails_the_command_not_the_server(wire):
    srv = server(wire, abort=lambda c, p: 1 / 0)
    srv.handle(cmd("abort", {}))
    wire.wait_for(lambda: "failed" in wire.statuses("c1"))
    assert "ZeroDivisionError" in wire.replies[-1]["reason"]
    srv.handle(cmd("ping", {}, id="c2"))
    wire.wait_for(lambda: "done" in wire.statuses("c2"))


def test_unsupported_command_fails_without_running(wire):
    srv = server(wire)
    srv.handle(cmd("expose"))
    wire.wait_for(lambda: wire.statuses("c1"))
    assert wire.statuses("c1") == ["failed"] and "not supported" in wire.replies[0]["reason"]
    assert srv.executed == 0


def test_invalid_command_is_refused_with_an_error_event_and_a_failed_reply(wire):
    runs = []
    srv = server(wire, expose=lambda c, p: runs.append(c))
    bad = json.loads(cmd("expose", {"duration": 3}, id="bad1"))
    bad["payload"]["duration"] = -3
    srv.handle(json.dumps(bad).encode(), "indisync/ota2/cmd")
    srv.handle(b"{not json", "indisync/ota2/cmd")
    wire.wait_for(lambda: len(wire.errors) == 2)
    assert "expose.duration" in wire.errors[0][0] and wire.errors[0][2] == "bad1"
    assert wire.statuses("bad1") == ["failed"] and "expose.duration" in wire.replies[0]["reason"]
    assert runs == [] and srv.rejected == 2 and srv.executed == 0
    # the id was not remembered: a corrected resend runs
    srv.handle(cmd("expose", {"duration": 3}, id="bad1"))
    wire.wait_for(lambda: "done" in wire.statuses("bad1"))
    assert len(runs) == 1


def test_remembered_ids_are_bounded(wire):
    srv = CommandServer("ota2", {}, wire.reply, wire.error, remember=3)
    for i in range(5):
        srv.handle(cmd("ping", {}, id=f"p{i}"))
    wire.wait_for(lambda: len(wire.replies) == 10)
    assert len(srv._seen) == 3


def test_handlers_for_unknown_commands_are_a_programming_error(wire):
    with pytest.raises(ValueError, match="unknown commands"):
        CommandServer("ota2", {"explode": lambda c, p: None}, wire.reply, wire.error)


def test_error_event_about_field_never_echoes_a_hostile_id(wire):
    srv = server(wire)
    data = json.loads(cmd())
    data["id"] = "../../x"
    srv.handle(json.dumps(data).encode())
    wire.wait_for(lambda: wire.errors)
    assert wire.errors[0][2] is None and wire.replies == []
