"""CommandServer without a broker: accepted/done/failed, exactly-once on redelivery, refusals."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

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


# ---- issue 9: retained, expired and already-run commands never run; abort never waits ------------
def test_a_retained_command_is_refused_and_not_run(wire):
    runs = []
    s = server(wire, expose=lambda c, p: runs.append(c.id))
    s.handle(cmd(id="r1"), "indisync/ota2/cmd", retained=True)
    time.sleep(0.2)
    assert runs == [] and wire.statuses("r1") == []
    assert "retained command is never executed" in wire.errors[0][0]


def test_a_command_older_than_its_expiry_is_refused_naming_the_clock_fix(wire):
    runs = []
    s = CommandServer("ota2", {"expose": lambda c, p: runs.append(c.id)}, wire.reply, wire.error, expiry=30)
    old = messages.now_iso(datetime.fromtimestamp(time.time() - 31, timezone.utc))
    s.handle(messages.make("expose", "ota1", {"duration": 5}, id="old1", ts=old).encode())
    future = messages.now_iso(datetime.fromtimestamp(time.time() + 31, timezone.utc))
    s.handle(messages.make("expose", "ota1", {"duration": 5}, id="fut1", ts=future).encode())
    s.handle(cmd(id="ok1"))
    wire.wait_for(lambda: "done" in wire.statuses("ok1"))
    assert runs == ["ok1"]
    assert wire.statuses("old1") == ["failed"] and wire.statuses("fut1") == ["failed"]
    reason = next(r["reason"] for r in wire.replies if r["command_id"] == "old1")
    assert "expired" in reason and "chrony" in reason


def test_the_age_check_uses_the_measured_offset_to_the_sender(wire):
    """A slave whose clock is 40 s ahead (offset measured) still runs a fresh command from the master."""
    runs = []
    s = CommandServer("ota2", {"expose": lambda c, p: runs.append(c.id)}, wire.reply, wire.error, expiry=30,
                      clock=lambda: time.time() + 40, sender_offset=lambda sender: 40.0 if sender == "ota1" else None)
    s.handle(cmd(id="fresh"))
    wire.wait_for(lambda: "done" in wire.statuses("fresh"))
    assert runs == ["fresh"]


def test_a_restarted_server_never_runs_an_id_it_ran_before(wire, tmp_path):
    journal = tmp_path / ".indisync" / "ota2.commands.jsonl"
    runs = []
    handlers = {"expose": lambda c, p: runs.append(c.id) or {"n": len(runs)}}
    first = CommandServer("ota2", handlers, wire.reply, wire.error, executed_path=journal)
    first.handle(cmd(id="once"))
    wire.wait_for(lambda: "done" in wire.statuses("once"))
    first.close(wait=True)
    again = CommandServer("ota2", handlers, wire.reply, wire.error, executed_path=journal)  # the node restarted
    again.handle(cmd(id="once"))
    wire.wait_for(lambda: wire.statuses("once").count("done") == 2)
    assert runs == ["once"]
    assert [r["result"] for r in wire.replies if r["status"] == "done"] == [{"n": 1}, {"n": 1}]  # the remembered reply


def test_a_command_interrupted_by_a_restart_is_answered_failed_not_run_again(wire, tmp_path):
    journal = tmp_path / "ota2.commands.jsonl"
    release = threading.Event()
    runs = []

    def expose(c, p):
        runs.append(c.id)
        release.wait(5)

    first = CommandServer("ota2", {"expose": expose}, wire.reply, wire.error, executed_path=journal)
    first.handle(cmd(id="cut"))
    wire.wait_for(lambda: "accepted" in wire.statuses("cut"))
    # kill -9 here: nothing more is written; the journal has 'accepted' on disk (fsync'd before running)
    with open(journal, "a") as f:
        f.write('{"id": "torn", "rep')  # and a line cut short by the crash
    again = CommandServer("ota2", {"expose": expose}, wire.reply, wire.error, executed_path=journal)
    again.handle(cmd(id="cut"))
    wire.wait_for(lambda: "failed" in wire.statuses("cut"))
    assert runs == ["cut"]
    assert "restarted" in [r for r in wire.replies if r["status"] == "failed"][0]["reason"]
    release.set()
    first.close(wait=True)
    again.close(wait=True)


def test_the_journal_stays_bounded_and_compacts_atomically(tmp_path):
    from indisync.protocol.commands import ExecutedIds

    path = tmp_path / "ids.jsonl"
    ids = ExecutedIds(path, limit=10)
    for i in range(35):
        ids.put(f"id{i}", {"command_id": f"id{i}", "command": "ping", "status": "done"})
    ids.close()
    assert len(path.read_text().splitlines()) <= 21
    reloaded = ExecutedIds(path, limit=10)
    assert len(reloaded) == 10 and "id34" in reloaded and "id24" not in reloaded
    assert not path.with_name(path.name + ".tmp").exists()


def test_abort_runs_at_once_while_four_long_commands_hold_every_worker(wire):
    release = threading.Event()
    started = threading.Semaphore(0)
    aborted = threading.Event()

    def expose(c, p):
        started.release()
        release.wait(10)

    def abort(c, p):
        aborted.set()

    s = server(wire, expose=expose, abort=abort, autofocus=expose)
    try:
        for i in range(4):
            s.handle(cmd(id=f"long{i}"))
        for _ in range(4):
            assert started.acquire(timeout=5)
        t0 = time.monotonic()
        s.handle(cmd("abort", {}, id="stop"))
        s.handle(cmd("ping", {}, id="p1"))
        assert aborted.wait(2.0), "abort waited behind the busy workers"
        wire.wait_for(lambda: "done" in wire.statuses("stop") and "done" in wire.statuses("p1"), timeout=2)
        assert time.monotonic() - t0 < 2.0
    finally:
        release.set()
        s.close(wait=True)


def test_a_result_that_is_not_json_fails_the_command_instead_of_leaving_the_sender_waiting(wire, tmp_path):
    s = CommandServer("ota2", {"expose": lambda c, p: {"when": object()}}, wire.reply, wire.error,
                      executed_path=tmp_path / "ids.jsonl")
    s.handle(cmd(id="bad"))
    wire.wait_for(lambda: "failed" in wire.statuses("bad"))
    assert "TypeError" in [r for r in wire.replies if r["status"] == "failed"][0]["reason"]


def test_an_unwritable_journal_is_a_clear_error_at_start(wire, tmp_path):
    from indisync.errors import IndisyncError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(IndisyncError, match="storage.directory writable"):
        CommandServer("ota2", {}, wire.reply, wire.error, executed_path=blocker / "ids.jsonl")
