"""indisync.alerts: dedupe, rate limit, min_level, bounded queue, a worker that survives, redaction,
and one real apprise send to a local HTTP endpoint (apprise's json:// URL)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest

from indisync.alerts import Alarm, Alerter, AlertSettings, redact
from indisync.config import load_config
from indisync.errors import ConfigError
from tests.fakes.json_endpoint import JsonEndpoint


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    """An injected notify: records (alarm, urls), answers per ``answers`` (url -> bool), may block or raise."""

    def __init__(self, answers=None, block: threading.Event | None = None, raise_first: int = 0):
        self.calls: list[tuple[Alarm, list[str]]] = []
        self.answers = answers or {}
        self.block = block
        self.raise_first = raise_first
        self.cond = threading.Condition()

    def __call__(self, alarm, urls):
        if self.block is not None:
            self.block.wait(10)
        with self.cond:
            self.calls.append((alarm, urls))
            self.cond.notify_all()
        if self.raise_first > 0:
            self.raise_first -= 1
            raise RuntimeError("service exploded at https://user:hunter2@example.com/x")
        return {u: self.answers.get(u, True) for u in urls}

    def wait(self, n: int, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.calls) >= n, timeout)


def alarm(cause="park_failed", level="critical", title="park failed", body="the mount did not park"):
    return Alarm(cause, level, title, body)


def make(recorder, clock=None, **settings):
    settings.setdefault("urls", ["json://127.0.0.1:9/"])
    alerter = Alerter(AlertSettings(**settings), "ota1", notify=recorder, clock=clock or FakeClock())
    return alerter.start()


def test_importing_alerts_does_not_import_apprise():
    out = subprocess.run([sys.executable, "-c", "import sys, indisync.alerts, indisync.config; "
                          "print('apprise' in sys.modules)"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_sends_once_per_cause_per_repeat_window_and_counts_the_repeats():
    clock, rec = FakeClock(), Recorder()
    alerter = make(rec, clock, repeat_s=600)
    try:
        assert alerter.raise_alarm(alarm()) is True
        assert rec.wait(1)
        clock.t += 10
        assert alerter.raise_alarm(alarm()) is False  # a repeat within 600 s
        clock.t += 100
        assert alerter.raise_alarm(alarm()) is False
        assert alerter.raise_alarm(alarm(cause="close_failed")) is True  # another cause passes
        assert rec.wait(2)
        clock.t += 500  # 610 s after the first
        assert alerter.raise_alarm(alarm()) is True
        assert rec.wait(3)
    finally:
        alerter.close()
    first, other, third = (a for a, _ in rec.calls)
    assert first.title == "[ota1] park failed" and "Repeated" not in first.body
    assert other.cause == "close_failed"
    assert "Repeated 2 more times" in third.body, third.body
    clock.t += 601
    assert len(rec.calls) == 3


def test_below_min_level_is_logged_not_sent(caplog):
    rec = Recorder()
    alerter = make(rec, min_level="warning")
    try:
        with caplog.at_level(logging.INFO, logger="indisync.alerts"):
            assert alerter.raise_alarm(alarm(cause="night_summary:2026-12-05", level="info", title="summary")) is False
        assert alerter.raise_alarm(alarm(level="warning")) is True
        assert rec.wait(1)
    finally:
        alerter.close()
    assert [a.cause for a, _ in rec.calls] == ["park_failed"]
    assert "night_summary:2026-12-05" in caplog.text


def test_no_urls_only_logs_and_says_it_would_have_sent(caplog):
    rec = Recorder()
    alerter = Alerter(AlertSettings(urls=[]), "ota1", notify=rec, clock=FakeClock()).start()
    try:
        with caplog.at_level(logging.WARNING, logger="indisync.alerts"):
            assert alerter.raise_alarm(alarm()) is True
        assert alerter.send_now(alarm()) == {}
    finally:
        alerter.close()
    assert rec.calls == []
    assert "park_failed" in caplog.text


def test_raise_alarm_never_blocks_on_a_slow_service_and_the_queue_is_bounded(caplog):
    gate = threading.Event()
    rec = Recorder(block=gate)
    alerter = make(rec, queue_size=2, send_timeout_s=30)
    try:
        t0 = time.monotonic()
        results = [alerter.raise_alarm(alarm(cause=f"c{i}")) for i in range(6)]
        assert time.monotonic() - t0 < 0.5  # never waits for the service
        # the worker took one and hangs in notify; two wait in the queue; the rest are refused (logged)
        assert results.count(True) in (2, 3) and results[-1] is False
        assert "queue full" in caplog.text
        gate.set()
        assert rec.wait(results.count(True))
    finally:
        gate.set()
        alerter.close()


def test_a_dropped_alarm_is_counted_in_the_next_of_its_cause():
    gate = threading.Event()
    rec = Recorder(block=gate)
    clock = FakeClock()
    alerter = make(rec, clock, queue_size=1)
    try:
        assert alerter.raise_alarm(alarm(cause="a"))
        deadline = time.monotonic() + 5
        while alerter._queue.qsize() and time.monotonic() < deadline:  # the worker took it and hangs
            time.sleep(0.01)
        assert alerter.raise_alarm(alarm(cause="b"))  # waits in the queue
        assert alerter.raise_alarm(alarm(cause="c")) is False  # queue full: dropped, counted
        gate.set()
        assert rec.wait(2)
        assert alerter.raise_alarm(alarm(cause="c"))  # not rate-limited: it was never sent
        assert rec.wait(3)
    finally:
        gate.set()
        alerter.close()
    assert "Repeated 1 more time " in rec.calls[2][0].body


def test_the_worker_survives_a_failing_sender_and_a_failing_publish(caplog):
    rec = Recorder(raise_first=1)
    published = []

    def publish(a):
        published.append(a)
        if len(published) == 1:
            raise ConnectionError("broker gone")

    alerter = Alerter(AlertSettings(urls=["json://127.0.0.1:9/"]), "ota1", notify=rec, clock=FakeClock(),
                      publish=publish).start()
    try:
        alerter.raise_alarm(alarm(cause="a"))
        alerter.raise_alarm(alarm(cause="b"))
        assert rec.wait(2)
        assert alerter.alive
    finally:
        alerter.close()
    assert [a.cause for a in published] == ["a", "b"]
    assert "hunter2" not in caplog.text  # the exception's URL is redacted in the log
    assert "broker gone" in caplog.text


def test_publish_gets_every_level_but_phones_only_from_min_level():
    rec, published = Recorder(), []
    alerter = Alerter(AlertSettings(urls=["json://127.0.0.1:9/"], min_level="critical"), "ota1", notify=rec,
                      clock=FakeClock(), publish=published.append).start()
    try:
        assert alerter.raise_alarm(alarm(cause="s", level="info")) is False
        assert alerter.raise_alarm(alarm(cause="w", level="warning")) is False
        assert alerter.raise_alarm(alarm(cause="c", level="critical")) is True
        assert rec.wait(1)
    finally:
        alerter.close()
    assert [a.cause for a in published] == ["s", "w", "c"]
    assert [a.cause for a, _ in rec.calls] == ["c"]
    assert published[0].event_payload() == {"cause": "s", "level": "info", "title": "park failed",
                                            "body": "the mount did not park"}


def test_a_hanging_sender_is_abandoned_after_send_timeout():
    gate = threading.Event()
    rec = Recorder(block=gate)
    alerter = Alerter(AlertSettings(urls=["json://127.0.0.1:9/"], send_timeout_s=0.2), "ota1", notify=rec,
                      clock=FakeClock())
    try:
        t0 = time.monotonic()
        answered = alerter.send_now(alarm())
        assert time.monotonic() - t0 < 3.0
        assert answered == {"json://127.0.0.1:9": False}
    finally:
        gate.set()


def test_send_now_reports_each_url_redacted():
    urls = ["ntfy://ntfy.sh/my-secret-topic", "mailtos://me:hunter2@example.com", "ntfy://ntfy.sh/my-other"]
    rec = Recorder(answers={urls[1]: False})
    alerter = Alerter(AlertSettings(urls=urls), "ota1", notify=rec, clock=FakeClock())
    answered = alerter.send_now(alarm(level="info"))
    assert answered == {"ntfy://ntfy.sh/my***": True, "mailtos://me:***@example.com": False,
                        "ntfy://ntfy.sh/my*** (#3)": True}
    assert rec.calls[0][1] == urls  # the sender gets the real URLs


@pytest.mark.parametrize("url, shown", [
    ("mailtos://me:secret@example.com", "mailtos://me:***@example.com"),
    ("ntfy://ntfy.sh/rig-topic-x7?priority=high", "ntfy://ntfy.sh/ri***"),
    ("tgram://123456:AAE-bot-token/987654", "tgram://***/98***"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "discord://***/JH***"),
    ("pover://userkey@apptoken", "pover://***@***"),
    ("json://127.0.0.1:8080/hook", "json://127.0.0.1:8080/ho***"),
])
def test_redact_hides_secrets(url, shown):
    assert redact(url) == shown


def test_alarm_level_and_settings_are_checked():
    with pytest.raises(ValueError, match="allowed: info, warning, critical"):
        Alarm("x", "urgent", "t", "b")
    with pytest.raises(ConfigError, match="alerts.*urls\\[0\\]"):
        load_config(data={"alerts": {"urls": ["ntfy.sh/topic"]}})
    with pytest.raises(ConfigError, match="queue_size"):
        load_config(data={"alerts": {"queue_size": 0}})
    cfg = load_config(data={"alerts": {"urls": ["ntfy://ntfy.sh/x"], "min_level": "info", "repeat_s": 60}})
    assert cfg.alerts.min_level == "info" and cfg.alerts.repeat_s == 60


def test_close_is_bounded_with_a_hanging_sender():
    gate = threading.Event()
    rec = Recorder(block=gate)
    alerter = make(rec, send_timeout_s=30)
    try:
        alerter.raise_alarm(alarm())
        t0 = time.monotonic()
        alerter.close(timeout=0.3)
        assert time.monotonic() - t0 < 2.0
    finally:
        gate.set()


# -- a real apprise send ---------------------------------------------------------------------
def test_apprise_delivers_to_a_local_json_endpoint():
    with JsonEndpoint() as endpoint:
        up, down = endpoint.url, "json://127.0.0.1:9/"  # port 9: nothing listens
        alerter = Alerter(AlertSettings(urls=[up, down], send_timeout_s=5), "ota1").start()
        try:
            assert alerter.raise_alarm(alarm(title="park failed: timeout", body="park it by hand"))
            first = endpoint.wait_for(lambda got: got, 15)[0]
            answered = alerter.send_now(Alarm("alert_test", "info", "test", "hello"))
        finally:
            alerter.close()
    assert first["title"] == "[ota1] park failed: timeout" and first["message"] == "park it by hand"
    assert first["type"] == "failure"  # critical
    assert answered == {up.rstrip("/"): True, "json://127.0.0.1:9": False}


def test_apprise_log_lines_are_redacted_and_its_debug_lines_dropped():
    from indisync.alerts.alerter import _RedactApprise

    def record(level, msg, *args):
        return logging.LogRecord("apprise", level, __file__, 1, msg, args, None)

    sent = record(logging.INFO, "Sent ntfy notification to '%s'.", "https://ntfy.sh/my-secret-topic")
    assert _RedactApprise().filter(sent) and sent.getMessage() == "Sent ntfy notification to 'https://ntfy.sh/my***'."
    assert not _RedactApprise().filter(record(logging.DEBUG, "ntfy Headers: {'Authorization': 'Bearer tk_x'}"))
