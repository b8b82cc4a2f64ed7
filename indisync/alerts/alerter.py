"""Alarms that reach a phone: deduplicated, rate-limited, and sent from a worker thread.

``Alerter.raise_alarm`` never blocks: it decides (level, repeat within ``alerts.repeat_s``), puts
the alarm on a bounded queue and returns. One worker thread publishes it (on MQTT, through the
``publish`` callback the node gives) and sends it to every apprise URL, each service bounded by
``alerts.send_timeout_s``, so a slow service never delays an exposure or a park.

apprise is imported only by the sender (``apprise_notify``), never by importing this module.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .settings import LEVELS, AlertSettings

log = logging.getLogger(__name__)

Notify = Callable[["Alarm", list[str]], dict[str, bool]]  # (alarm, urls) -> url -> answered
Publish = Callable[["Alarm"], None]

_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
MAX_TITLE = 200  # the "alarm" event's limits (protocol/messages.py)
MAX_BODY = 4000


@dataclass(frozen=True)
class Alarm:
    cause: str  # dedupe key: "park_failed", "node_offline:ota2", "disk_low:ota2", "night_summary:2026-12-05", ...
    level: str  # "info" | "warning" | "critical"
    title: str  # one line
    body: str  # what happened and what to do

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"alarm level {self.level!r}; allowed: {', '.join(LEVELS)}")
        if not self.cause:
            raise ValueError("an alarm needs a cause (its dedupe key)")

    def event_payload(self) -> dict:
        """The MQTT ``alarm`` event's payload (protocol/messages.py EVENTS["alarm"]): one line each
        (the schema refuses control characters: the body's lines are joined with " | ")."""
        return {"cause": _clip(self.cause, 128), "level": self.level, "title": _clip(self.title, MAX_TITLE),
                "body": _clip(self.body.replace("\n", " | "), MAX_BODY)}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _clip(text: str, limit: int) -> str:
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- redaction -------------------------------------------------------------------------------
_HOSTNAME = re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:\d+)?\Z")


def redact(url: str) -> str:
    """An apprise URL safe for logs: scheme and host kept; passwords, tokens, topics and query hidden.

    ``mailtos://me:secret@example.com`` -> ``mailtos://me:***@example.com``;
    ``ntfy://ntfy.sh/my-rig-topic`` -> ``ntfy://ntfy.sh/my***``; ``tgram://123:ABC/456`` -> ``tgram://***/45***``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    user = ""
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        name, colon, _ = userinfo.partition(":")
        user = (name if colon else "***") + (":***" if colon else "") + "@"
    host = netloc if _HOSTNAME.match(netloc) else ("***" if netloc else "")
    parts = [p[:2] + "***" for p in path.split("/") if p]
    return f"{scheme}://{user}{host}" + ("/" + "/".join(parts) if parts else "")


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_secrets(text: str, urls: list[str] = ()) -> str:
    """``text`` with every configured URL, and anything else shaped like a URL, redacted."""
    for url in urls:
        if url in text:
            text = text.replace(url, redact(url))
    return _URL_IN_TEXT.sub(lambda m: redact(m.group(0)) if "***" not in m.group(0) else m.group(0), text)


class _RedactApprise(logging.Filter):
    """On apprise's logger: URLs in its lines redacted ("Sent ntfy notification to 'https://ntfy.sh/<topic>'"
    would give the topic away), and its debug lines (payloads, headers with tokens) dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        message = record.getMessage()
        clean = redact_secrets(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_APPRISE_FILTER = _RedactApprise()


# -- the default sender ------------------------------------------------------------------------
def apprise_notify(settings: AlertSettings) -> Notify:
    """A sender over apprise: every URL at once, the whole call bounded by ``send_timeout_s``."""

    def notify(alarm: Alarm, urls: list[str]) -> dict[str, bool]:
        import apprise  # here, not at import time: importing indisync.alerts stays light

        apprise_log = logging.getLogger("apprise")
        if _APPRISE_FILTER not in apprise_log.filters:
            apprise_log.addFilter(_APPRISE_FILTER)
        answered: dict[str, bool] = {url: False for url in urls}
        services = apprise.Apprise()
        by_id: dict[str, str] = {}
        for url in urls:
            plugin = apprise.Apprise.instantiate(url)
            if plugin is None:
                log.error("alerts: %s is not a URL apprise understands (check its scheme and fields: "
                          "https://github.com/caronc/apprise/wiki)", redact(url))
                continue
            plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, settings.send_timeout_s)
            plugin.socket_read_timeout = min(plugin.socket_read_timeout, settings.send_timeout_s)
            by_id[plugin.url_id()] = url
            services.add(plugin)
        if not by_id:
            return answered
        notify_type = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
                       "critical": apprise.NotifyType.FAILURE}[alarm.level]
        result = services.notify(body=alarm.body, title=alarm.title, notify_type=notify_type,
                                 timeout=settings.send_timeout_s)
        for service in result:
            url = by_id.get(service.url_id)
            if url is not None:
                answered[url] = bool(service)
                if not service:
                    log.warning("alerts: %s did not answer (%s)", redact(url), service.status.name.lower())
        return answered

    return notify


# -- the alerter -------------------------------------------------------------------------------
_STOP = object()


class Alerter:
    """Raises alarms for one process (``source``: the node's or guard's name, put in each title).

    ``notify``: who sends (default: apprise in the worker), returns url -> answered; tests inject one.
    ``publish``: called in the worker with each alarm that passed the dedupe (any level), e.g. to
    publish the MQTT ``alarm`` event; its failures are logged, never raised.
    ``clock``: monotonic seconds, for the repeat window (tests inject a fake one).
    """

    def __init__(self, settings: AlertSettings, source: str, notify: Notify | None = None,
                 clock: Callable[[], float] = time.monotonic, publish: Publish | None = None):
        self.settings = settings
        self.source = source
        self._notify = notify or apprise_notify(settings)
        self._clock = clock
        self._publish = publish
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}  # cause -> clock() when it last passed
        self._suppressed: dict[str, int] = {}  # cause -> repeats not sent since
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.sent: list[tuple[Alarm, dict[str, bool]]] = []  # the last few sends (for status and tests)

    # -- life --------------------------------------------------------------------------------
    def start(self) -> "Alerter":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"alerts-{self.source}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued within ``timeout`` s, then stop the worker (bounded; it is a daemon)."""
        self._closed.set()
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=max(0.0, timeout))
        except queue.Full:
            pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("alerts: the sender did not finish within %.1f s; %d alarm(s) left unsent",
                        timeout, self._queue.qsize())

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- raising -----------------------------------------------------------------------------
    def raise_alarm(self, alarm: Alarm) -> bool:
        """Queue ``alarm``; never blocks. True if it goes (or, with no URLs, would go) to the phones.

        False when below ``alerts.min_level`` (still logged and published), a repeat of its cause
        within ``alerts.repeat_s`` (counted; the next one sent says how many), or the queue is full.
        """
        try:
            return self._raise(alarm)
        except Exception:  # a bug here must never reach the caller (an exposure or a park)
            log.exception("alerts: could not raise alarm %s", alarm.cause)
            return False

    def _raise(self, alarm: Alarm) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(alarm.cause)
            if last is not None and now - last < self.settings.repeat_s:
                count = self._suppressed[alarm.cause] = self._suppressed.get(alarm.cause, 0) + 1
                log.info("alerts: %s repeated within %.0f s (%d not sent): %s", alarm.cause,
                         self.settings.repeat_s, count, alarm.title)
                return False
            repeats = self._suppressed.pop(alarm.cause, 0)
            self._last_sent[alarm.cause] = now
        if repeats:
            alarm = Alarm(alarm.cause, alarm.level, alarm.title,
                          f"{alarm.body}\n(Repeated {repeats} more time{'s' if repeats > 1 else ''} "
                          f"since the last notification, not sent: one per {self.settings.repeat_s:.0f} s.)")
        to_phone = LEVELS.index(alarm.level) >= LEVELS.index(self.settings.min_level)
        log.log(_LOG_LEVEL[alarm.level], "ALARM %s [%s]: %s — %s", alarm.cause, alarm.level, alarm.title, alarm.body)
        if not to_phone and self._publish is None:
            return False
        if to_phone and not self.settings.urls and self._publish is None:
            return True  # logged above; nowhere to send it
        try:
            self._queue.put_nowait((alarm, to_phone and bool(self.settings.urls)))
        except queue.Full:
            with self._lock:  # not sent: count it so the next one of this cause says so, and let it through
                self._suppressed[alarm.cause] = self._suppressed.get(alarm.cause, 0) + repeats + 1
                self._last_sent.pop(alarm.cause, None)
            log.error("alerts: queue full (%d waiting; alerts.queue_size), alarm %s not sent: %s",
                      self.settings.queue_size, alarm.cause, alarm.title)
            return False
        if self._thread is None:
            log.warning("alerts: alarm %s queued but the sender was never started (Alerter.start)", alarm.cause)
        return to_phone

    def send_now(self, alarm: Alarm) -> dict[str, bool]:
        """Send ``alarm`` to every URL now, in this thread: redacted url -> answered (``indisync alert-test``)."""
        answered = self._send(alarm)
        out: dict[str, bool] = {}
        for i, url in enumerate(self.settings.urls):
            key = redact(url)
            if key in out:
                key = f"{key} (#{i + 1})"
            out[key] = answered.get(url, False)
        return out

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        log.debug("alerts: sender started (%d URL(s))", len(self.settings.urls))
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            except BaseException:  # pragma: no cover - an interpreter shutting down
                log.exception("alerts: the sender stopped")
                return
            if item is _STOP:
                return
            alarm, to_phone = item
            try:
                if self._publish is not None:
                    try:
                        self._publish(alarm)
                    except Exception as exc:
                        log.warning("alerts: could not publish alarm %s on MQTT: %s", alarm.cause, exc)
                if to_phone:
                    answered = self._send(alarm)
                    failed = [redact(u) for u, ok in answered.items() if not ok]
                    if failed:
                        log.error("alerts: alarm %s not delivered to %s", alarm.cause, ", ".join(failed))
                    else:
                        log.info("alerts: alarm %s sent to %d service(s)", alarm.cause, len(answered))
            except Exception:  # the worker never dies: log the defect and take the next alarm
                log.exception("alerts: sending alarm %s failed", alarm.cause)

    def _send(self, alarm: Alarm) -> dict[str, bool]:
        """Call ``notify`` in a thread of its own, waited for at most send_timeout_s (+1 s): a sender
        that ignores its timeouts is abandoned (its URLs count as not answered), never waited on."""
        urls = list(self.settings.urls)
        if not urls:
            return {}
        titled = Alarm(alarm.cause, alarm.level, f"[{self.source}] {alarm.title}", alarm.body)
        box: dict = {}

        def call() -> None:
            try:
                box["answered"] = self._notify(titled, urls)
            except Exception as exc:
                box["error"] = exc

        worker = threading.Thread(target=call, name=f"alerts-send-{self.source}", daemon=True)
        worker.start()
        worker.join(self.settings.send_timeout_s + 1.0)
        if worker.is_alive():
            log.error("alerts: sending %s took over %.0f s (alerts.send_timeout_s); abandoned", alarm.cause,
                      self.settings.send_timeout_s)
            answered = {url: False for url in urls}
        elif "error" in box:
            log.error("alerts: sending %s failed: %s", alarm.cause, redact_secrets(str(box["error"]), urls))
            answered = {url: False for url in urls}
        else:
            answered = {url: bool(box.get("answered", {}).get(url, False)) for url in urls}
        self.sent = (self.sent + [(alarm, answered)])[-20:]
        return answered
