"""Model-based test of the night: a hypothesis ``RuleBasedStateMachine`` drives the REAL machine
(indisync.night.machine) run by the REAL executor (indisync.night.executor) over the fake rig
(tests/fakes/rig.py), with a fake clock the test owns, through weather flips, clock jumps, restarts
at any hour, device faults, a full disk, a lost guide star and `stop`; after every rule it checks:

- I1: while the weather is unsafe (alert, device gone, or no update for stale_after), the mount parks
  and the dome closes within a bounded time (fake: a few park_retry; wall: well under a second). While
  a park or close fault is active, every failed attempt is reported as an error and the park is tried
  again; FakeMount.conflicts (a slew or unpark during a park) stays empty.
- I2: the mount is never unparked (log "unparked" / "slew_start") at a fake time outside [start, end),
  except, with calibration on (half the examples: flats.sky both, darks at the end and in the rain),
  inside the dusk or the dawn flats' interval (+ flats_overrun), where the sky flats point it.
- I3: past the window's end (faults cleared; with calibration on, past the dawn flats' interval too)
  the night reaches ``done`` within a bounded number of ticks; a finished night left the mount parked
  and the dome closed.
- I6: the sequence's done count equals the frames on disk (FakeImaging.frames_on_disk).
- No exception escapes the executor's thread, nor any other thread; no action fails with anything but
  the rig's own errors (IndisyncError, OSError).

The harness (``NightHarness``) is shared with benchmarks/safety_model.py, which runs the same rules
for thousands of examples.

Timing: the executor's loop ticks every TICK_S (1 s) of wall time when idle, so the test posts its own
events (a clock event the test can recognise, ``Probe``) and waits until the loop has stepped them; a
check waits for the executor at most about a second (it passes in milliseconds when all is well). A
clock jump is made while holding the rig's MotionArbiter (as a motion of its own): a slew in flight
finishes first, and the jump is stepped (the slewing state's token cancelled) before any other motion
may start, so that "unparked at fake time t" is well defined (I2) - in the real world time does not
jump while an unpark is half done.

Bugs found with this harness (regression tests at the end, all fixed since): a (re)start while the
indiserver is gone crashed the executor; a restart in the rain opened the dome and unparked before the
first weather reading; `stop` while the guide star was lost never ended the night.
"""

from __future__ import annotations

import bisect
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import indisync.night.actions.flats as flats_mod
import indisync.night.executor as executor_mod
from indisync.config import load_config
from indisync.errors import IndisyncError
from indisync.night.executor import NightExecutor
from indisync.night.machine import ACTIVE, Ev, State
from indisync.night.token import Token
from tests.fakes.rig import fake_rig

try:  # events as typed payloads (indisync.night.events)
    from indisync.night.events import Clock as _ClockPayload

    @dataclass(frozen=True)
    class Probe(_ClockPayload):
        """A clock event the test can recognise once the loop has stepped it."""

        k: int = 0

    def post_probe(ex, k: int) -> None:
        ex.post(Probe(k=k))

    def probe_of(data) -> int | None:
        return data.k if isinstance(data, Probe) else None
except ImportError:  # events as dicts
    def post_probe(ex, k: int) -> None:
        ex.post(Ev.CLOCK, _probe=k)

    def probe_of(data) -> int | None:
        return data.get("_probe") if isinstance(data, dict) else None


def field_of(data, name):
    return data.get(name) if isinstance(data, dict) else getattr(data, name, None)


T0 = 1_800_000_000.0  # the window's start (fake epoch seconds); the window is [T0, T0 + WINDOW_S)
WINDOW_S = 8 * 3600.0
HOUR = 3600.0
SAFE_FOR = 60.0  # fake s of safe weather before the night slews back
STALE_AFTER = 900.0  # fake s without a weather update: unsafe
PARK_RETRY = 5.0  # fake s between park attempts
FRAME_RETRY = 5.0
EXPOSURE = 0.004  # real seconds per fake frame
POLL = 0.005  # real s between the weather watch's polls
WAIT = 0.5  # real s: the longest a check waits for the executor to act
END_TICKS = 40  # I3: ticks (1 fake s each) past the window's end before the night must be done
# A restart while the devices are gone waits for them safety.park_retry WALL seconds at a time (see
# test_a_restart_while_the_indiserver_is_gone_...): too slow for the model, which brings them back first.
PARK_ROUNDS = 4  # I1: park_retry rounds of fake time a park may take, beyond one per pending refusal
# Calibration on: tonight's sky-flats intervals (fake epoch s) and how long past one its state may stay
DUSK = (T0 - 1800.0, T0 - 300.0)
DAWN = (T0 + WINDOW_S + 300.0, T0 + WINDOW_S + 1800.0)
FLATS_OVERRUN = 60.0  # NightPlan.flats_overrun
CALIB_LATENCY = 0.003  # real s each node's flats or darks take


def make_config(batches: int | None, flats: bool = False, storage: str | None = None):
    calib = {"flats": {"sky": "both", "always": [{"filter": "L"}], "offset_every_s": 0.002},
             "darks": {"enabled": True, "when": ["rain", "end"], "exposures": [1.0]},
             "storage": {"directory": storage}} if flats else {}
    return load_config(data={**calib,
        "node": {"name": "m", "role": "master"},
        "master": {"target": {"name": "T", "ra": 90.0, "dec": 30.0}, "batches": batches,
                   "sequence": {"slots": [{"exposure": EXPOSURE, "repeat": 2}]}},
        "site": {"latitude": 45, "longitude": 10},
        "night": {"cool": True, "park_at_end": True, "warm_at_end": True},
        "indi": {"weather": "Weather", "dome": "Dome"},
        "safety": {"safe_for": SAFE_FOR, "stale_after": STALE_AFTER, "park_retry": PARK_RETRY,
                   "frame_retry": FRAME_RETRY, "poll": POLL},
    })


class FakeClock:
    """The executor's clock. Every change is kept with the monotonic time it was made, so a device
    log entry (monotonic) maps to the fake time of its moment."""

    def __init__(self, t: float):
        self._t = t
        self._lock = threading.Lock()
        self.history: list[tuple[float, float]] = [(time.monotonic(), t)]

    def __call__(self) -> float:
        return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = t
            self.history.append((time.monotonic(), t))

    def at(self, mono: float) -> float:
        """The fake time at monotonic time ``mono``."""
        i = bisect.bisect_right(self.history, (mono, float("inf"))) - 1
        return self.history[max(i, 0)][1]


class ObservedExecutor(NightExecutor):
    """The real executor; ``feed`` also tells the harness what went in (after it was stepped)."""

    def __init__(self, rig, clock, harness):
        super().__init__(rig, clock=clock)
        self.harness = harness
        self.last_probe = 0
        self.fed = threading.Condition()

    def feed(self, event, data):
        super().feed(event, data)
        # the time the machine stepped it at (the clock may jump meanwhile: read what it used)
        now = getattr(self.snapshot, "last_weather", None) if event is Ev.WEATHER else None
        self.harness.saw(event, data, now if now is not None else self.clock())
        with self.fed:
            k = probe_of(data)
            if k:
                self.last_probe = k
            self.fed.notify_all()


class Violation(AssertionError):
    pass


class _ActionFailures(logging.Handler):
    """Actions that raised something else than the rig's own errors (a bug, not a fault)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record):
        if record.exc_info and record.getMessage().startswith(("night action", "the night's loop failed")):
            exc = record.exc_info[1]
            if not isinstance(exc, (IndisyncError, OSError)):
                self.found.append(f"{record.getMessage()}: {type(exc).__name__}: {exc}")


@dataclass
class Stats:
    """What the examples covered (the benchmark's figures)."""

    examples: int = 0
    steps: int = 0
    states: set = field(default_factory=set)
    transitions: set = field(default_factory=set)
    longest_unsafe_open_s: float = 0.0  # wall clock
    longest_unsafe_open_fake_s: float = 0.0  # the executor's (fake) clock
    longest_unsafe_open_no_fault_s: float = 0.0  # the same, over stretches in which no park failed
    longest_unsafe_open_no_fault_fake_s: float = 0.0
    restarts: int = 0
    nights_done: int = 0
    park_errors: int = 0
    frames: int = 0
    unsafe_checks: int = 0  # I1 checks made while the weather was unsafe
    rain_while_active: int = 0  # the weather went unsafe with the night in an active state (the mount out)


STATS = Stats()
ACTIVE_STATES = frozenset(s.value for s in ACTIVE)


class NightHarness:
    """One fake rig, a fake clock, the executor on a thread; the rules and the checks."""

    def __init__(self, start_at: float, guider: bool, batches: int | None, flats: bool = False):
        self.window = (T0, T0 + WINDOW_S)
        self.flats = flats  # calibration on: dusk and dawn sky flats, darks at the end and in the rain
        self.storage = tempfile.mkdtemp(prefix="indisync-model-") if flats else None
        self.clock = FakeClock(start_at)
        self.cfg = make_config(batches, flats, self.storage)
        self.rig = fake_rig(self.cfg, dome=True, weather=True, guider=guider, slaves=1, latency=0.001)
        for p in self.rig.parts.participants:
            p.calib_latency = CALIB_LATENCY
        self.p = self.rig.parts
        self.crashes: list[str] = []
        self.thread_errors: list[str] = []
        self.timeline: list[dict] = []  # every executor's timeline, one after the other
        self.probe = 0
        # what the executor was told about the weather (its inputs): the model of "unsafe"
        self.w_status: str | None = None
        self.w_lost = False
        self.w_last = start_at
        self.watch_polls = 0
        self.park_device_failures = 0  # park attempts that found no devices (indiserver gone)
        self.refusals_given = {"park": 0, "close": 0}
        self.truth: list[tuple[float, bool]] = [(time.monotonic(), False)]  # (mono, the device says unsafe)
        self.checked_log = 0
        self.runs: list[list] = []  # [monotonic start, end or None] of every executor
        self._wrap_devices()
        self.park_failed_at: list[float] = []  # monotonic times of the 'park failed' errors
        say = self.rig.report.error

        def error(message):
            if "park failed" in message:
                self.park_failed_at.append(time.monotonic())
            say(message)

        self.rig.report.error = error
        self._patch = mock.patch.object(executor_mod, "night_window",
                                        lambda cfg, devices, now, report=None: (*self.window, None))
        self._patch.start()
        # the flats' intervals as tonight's, and a flat spot without astropy (the model is about safety)
        self._patches = [mock.patch.object(executor_mod, "flat_intervals", lambda *a: (DUSK, DAWN)),
                         mock.patch.object(flats_mod.sky, "flat_spot", lambda site, when, altitude: (100.0, 20.0))]
        for patch in self._patches:
            patch.start()
        self._failures = _ActionFailures()
        logging.getLogger("indisync.night").addHandler(self._failures)
        self._hook = threading.excepthook
        threading.excepthook = self._excepthook
        self.ex: ObservedExecutor | None = None
        self.thread: threading.Thread | None = None
        self._start()

    # ---- plumbing ----------------------------------------------------------------------------
    def _excepthook(self, args):
        self.thread_errors.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: "
                                  f"{args.exc_value}")

    def _wrap_devices(self):
        inner = self.rig.devices

        def devices():
            name = threading.current_thread().name
            try:
                return inner()
            except IndisyncError:
                if name == "night-park":
                    self.park_device_failures += 1
                raise
            finally:
                if name == "night-weather-watch":
                    self.watch_polls += 1

        self.rig.devices = devices

    def saw(self, event, data, now):  # on the loop's thread, after the step
        if event is Ev.WEATHER:
            self.w_status, self.w_lost, self.w_last = field_of(data, "status"), False, now
        elif event is Ev.WEATHER_LOST:
            self.w_lost = True

    def _start(self):
        now = self.clock()
        self.w_lost, self.w_last = False, now  # start() and resume() give stale_after of grace from now
        self.ex = ObservedExecutor(self.rig, self.clock, self)
        ex = self.ex

        def body():
            try:
                ex.run()
            except BaseException as exc:  # noqa: BLE001 - the test fails on it
                import traceback

                self.crashes.append("".join(traceback.format_exception(exc)))

        self.thread = threading.Thread(target=body, name="night-loop", daemon=True)
        self.foreign = set(threading.enumerate())  # threads of other tests: not this executor's to join
        self.runs.append([time.monotonic(), None])
        self.thread.start()
        self.settle_weather()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def wait_for(self, predicate, timeout=WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def sync(self, timeout=WAIT) -> bool:
        """Post a probe and wait until the loop has stepped it (and so everything posted before)."""
        if not self.running:
            return True
        self.probe += 1
        k, ex = self.probe, self.ex
        post_probe(ex, k)
        deadline = time.monotonic() + timeout
        with ex.fed:
            while ex.last_probe < k:
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    return not self.thread.is_alive()
                ex.fed.wait(min(left, 0.05))
        return True

    def settle_weather(self):
        """Let the weather watch see the device twice, then step what it posted."""
        if not self.running:
            return
        seen = self.watch_polls
        self.wait_for(lambda: self.watch_polls >= seen + 2 or not self.running)
        self.sync()

    def set_clock(self, t: float):
        """Jump the fake clock as one motion of the arbiter: no unpark or slew is half done across it."""
        if not self.running:
            self.clock.set(t)
            return
        token = Token(-1, "test: clock jump")

        def jump():
            self.clock.set(t)
            self.sync()

        self.rig.arbiter.move(token, "test: clock jump", jump)

    def tick(self, dt: float = 1.0):
        self.set_clock(self.clock() + dt)

    def device_unsafe(self) -> bool:
        return self.p.weather.status != "ok" or self.p.faults.devices_gone

    def _truth(self):
        self.truth.append((time.monotonic(), self.device_unsafe()))

    def model_unsafe(self) -> bool:
        """Unsafe as the executor was told (after settle_weather the device's truth)."""
        return self.w_lost or self.w_status == "alert" or self.clock() - self.w_last > STALE_AFTER

    def secured(self) -> bool:
        return self.p.mount.parked and not self.p.dome.shutter_open

    def state(self) -> str | None:
        return None if self.ex is None or self.ex.snapshot is None else self.ex.snapshot.state

    # ---- the rules ---------------------------------------------------------------------------
    def weather(self, status: str):
        """ok | alert: a new update of the weather device; lost: its WEATHER_STATUS gone."""
        if status != "ok" and not self.model_unsafe() and self.state() in ACTIVE_STATES:
            STATS.rain_while_active += 1
        if status == "lost":
            self.p.weather.status = None
        else:
            self.p.weather.set(status)
        self._truth()
        self.settle_weather()

    def advance(self, dt: float):
        self.tick(dt)

    def when_out(self):
        """Wait (bounded) for the night to have the mount out, when it can."""
        if self.running and self.state() == State.PARKED.value and not self.model_unsafe():
            self.tick(SAFE_FOR + 1)  # safe long enough: it slews back
        if self.running and not self.model_unsafe() and (self.window[0] <= self.clock() < self.window[1]
                                                         or self.in_flats_interval(self.clock())):
            self.wait_for(lambda: self.state() in ACTIVE_STATES or not self.running, 0.2)

    def in_flats_interval(self, t: float) -> bool:
        return self.flats and any(a <= t < b + FLATS_OVERRUN for a, b in (DUSK, DAWN))

    def twilight(self, which: str):
        """Calibration on: jump into the dusk (before the window) or dawn (after it) flats' interval,
        a fresh weather update, then safe_for of ticks: the night takes its sky flats."""
        if not self.flats:
            return
        start = DUSK[0] if which == "dusk" else DAWN[0]
        if self.clock() < start:
            self.set_clock(start + 1.0)
        if self.p.weather.status is not None and not self.p.faults.devices_gone:
            self.weather(self.p.weather.status)  # an update: the weather is not stale
        self.tick(SAFE_FOR + 1)
        self.wait_for(lambda: self.state() in (State.DUSK_FLATS.value, State.DAWN_FLATS.value) or not self.running, 0.1)

    def rain_when_out(self, status: str):
        """The weather turns ``status`` once the mount is out."""
        self.when_out()
        self.weather(status)

    def past_end(self, extra: float):
        """I3: clear every fault and jump past the window's end: done within END_TICKS ticks."""
        f = self.p.faults
        self.refusals_given["park"] -= f.park_refusals  # never consumed: no failed park to report
        self.refusals_given["close"] -= f.close_refusals
        f.park_refusals = f.close_refusals = f.slew_failures = f.frame_failures = 0
        if f.devices_gone:
            f.devices_gone = False
            self._truth()
            self.settle_weather()
        end = max(self.window[1], DAWN[1] + FLATS_OVERRUN) if self.flats else self.window[1]
        self.set_clock(max(self.clock(), end) + extra)
        for _ in range(END_TICKS):
            if not self.running or self.wait_for(lambda: self.ex.finished.is_set(), 0.02):
                break
            self.tick(1.0)
        self.wait_for(lambda: not self.running, 2.0)
        if self.running:
            raise Violation(f"I3: {END_TICKS} ticks past the window's end and the night is still "
                            f"{self.state()} ({self.ex.snapshot.reason})")

    def restart(self, at: float, weather: str | None):
        """Stop the executor (the process dies), maybe change the weather meanwhile, start a new
        executor on the same store at fake time ``at``: the saved snapshot resumes."""
        self.stop_executor()
        STATS.restarts += 1
        if self.p.faults.devices_gone:
            self.p.faults.devices_gone = False  # see test_a_restart_while_the_indiserver_is_gone_...
            self._truth()
        if weather is not None:
            if weather == "lost":
                self.p.weather.status = None
            else:
                self.p.weather.set(weather)
            self._truth()
        self.rig.stop_event = threading.Event()
        self.clock.set(at)
        self._start()

    def fault(self, kind: str, n: int):
        f = self.p.faults
        if kind == "devices_gone":
            f.devices_gone = not f.devices_gone
            self._truth()
            self.settle_weather()
            return
        if kind in ("park", "close"):
            self.refusals_given[kind] += n
        if kind == "frame":
            self.when_out()  # while imaging: the next frame is not written
        name = {"park": "park_refusals", "close": "close_refusals", "slew": "slew_failures",
                "frame": "frame_failures"}[kind]
        setattr(f, name, getattr(f, name) + n)
        if kind == "frame":  # let the frames fail now (each retried after frame_retry), while imaging
            for _ in range(f.frame_failures):
                left = f.frame_failures
                if not self.wait_for(lambda: f.frame_failures < left or self.state() != State.IMAGING.value, 0.1):
                    break
                self.tick(FRAME_RETRY)
        self.sync()

    def store_full(self, full: bool):
        self.rig.store.full = full
        self.sync()

    def star_lost(self, lost: bool):
        if self.p.guiding is not None:
            self.p.guiding.lost = lost
        self.sync()

    def stop(self, abort: bool):
        if self.running:
            self.ex.stop_night(abort)
        self.sync()

    def stop_executor(self):
        if self.ex is None:
            return
        self.rig.stop_event.set()
        self.ex.post(Ev.CLOCK, epoch=-1)  # wakes the loop at once; an old epoch's answer: dropped, not stepped
        self.thread.join(5)
        if self.thread.is_alive():
            raise Violation("the executor's loop did not end within 5 s of the stop event")
        for t in [t for t in threading.enumerate()
                  if t.name.startswith("night-") and t is not self.thread and t not in self.foreign]:
            t.join(5)  # every action and the weather watch (each checks the stop event)
            if t.is_alive():
                raise Violation(f"action thread {t.name} still running 5 s after the stop event")
        self.timeline += self.ex.timeline
        self.runs[-1][1] = time.monotonic()
        self.ex = None
        self.thread = None

    def close(self):
        try:
            self.stop_executor()
        finally:
            self._patch.stop()
            for patch in self._patches:
                patch.stop()
            if self.storage:
                shutil.rmtree(self.storage, ignore_errors=True)
            logging.getLogger("indisync.night").removeHandler(self._failures)
            threading.excepthook = self._hook
            self._collect()

    def _collect(self):
        STATS.examples += 1
        for entry in self.timeline:
            STATS.states.add(entry["to"])
            STATS.transitions.add((entry["from"], entry["to"]))
        wall, fake, clean_wall, clean_fake = self.longest_unsafe_open()
        STATS.longest_unsafe_open_s = max(STATS.longest_unsafe_open_s, wall)
        STATS.longest_unsafe_open_fake_s = max(STATS.longest_unsafe_open_fake_s, fake)
        STATS.longest_unsafe_open_no_fault_s = max(STATS.longest_unsafe_open_no_fault_s, clean_wall)
        STATS.longest_unsafe_open_no_fault_fake_s = max(STATS.longest_unsafe_open_no_fault_fake_s, clean_fake)
        STATS.nights_done += sum(1 for e in self.timeline if e["to"] == State.DONE.value)
        STATS.park_errors += sum(1 for e in self.rig.report.errors if "park failed" in e)
        STATS.frames += self.p.imaging.frames_on_disk

    # ---- the checks --------------------------------------------------------------------------
    def check(self):
        if self.crashes:
            raise Violation(f"an exception escaped the executor's loop:\n{self.crashes[0]}")
        if self.thread_errors:
            raise Violation(f"an exception escaped a thread: {self.thread_errors}")
        if self._failures.found:
            raise Violation(f"an action failed with an unexpected exception: {self._failures.found}")
        self.sync()
        self.check_i1()
        self.check_conflicts()
        self.check_i2()
        self.check_i6()
        self.check_done_secured()

    def check_conflicts(self):
        if self.p.mount.conflicts:
            raise Violation(f"I1: motion during a park: {self.p.mount.conflicts}")

    def check_i1(self):
        if not self.running or not self.model_unsafe():
            return
        STATS.unsafe_checks += 1
        if self.p.faults.devices_gone:  # the park cannot succeed: each attempt fails, is said, is retried
            if self.secured():
                return
            before = self.park_device_failures
            for _ in range(PARK_ROUNDS):  # a round: park_retry of fake time, then a moment for the attempt
                self.tick(PARK_RETRY)
                if not self.running or self.secured():
                    return
                if self.wait_for(lambda: self.park_device_failures > before or not self.running, 0.1):
                    break
            else:
                raise Violation(f"I1: unsafe with the devices gone and no park tried again in "
                                f"{PARK_ROUNDS} x park_retry (state {self.state()})")
            self.check_park_errors()
            return
        f = self.p.faults
        rounds = f.park_refusals + f.close_refusals + PARK_ROUNDS  # each refusal costs one attempt at most
        for _ in range(rounds):
            if self.wait_for(lambda: self.secured() or not self.running, 0.1):
                break
            self.tick(PARK_RETRY)  # a failed park is retried after park_retry
        if not self.wait_for(lambda: self.secured() or not self.running, 1.0):
            raise Violation(f"I1: unsafe ({self.unsafe_why()}) and after {rounds} x park_retry the mount is "
                            f"{'parked' if self.p.mount.parked else 'out'}, the dome "
                            f"{'open' if self.p.dome.shutter_open else 'closed'} (state {self.state()}: "
                            f"{self.ex.snapshot.reason}; faults {self.p.faults})")
        self.check_park_errors()

    def check_park_errors(self):
        f = self.p.faults
        consumed = max(self.refusals_given["park"] - f.park_refusals, self.refusals_given["close"] - f.close_refusals)
        failed = consumed + self.park_device_failures
        said = lambda: sum(1 for e in self.rig.report.errors if "park failed" in e)  # noqa: E731
        if not self.wait_for(lambda: said() >= failed, 1.0):
            raise Violation(f"I1: {failed} park attempts failed but {said()} 'park failed' errors were reported")

    def unsafe_why(self) -> str:
        if self.w_lost:
            return "weather lost"
        if self.w_status == "alert":
            return "alert"
        return f"no update for {self.clock() - self.w_last:.0f} s"

    def check_i2(self):
        log = self.p.log
        start, end = self.window
        while self.checked_log < len(log):
            mono, device, what = log[self.checked_log]
            self.checked_log += 1
            if device == "mount" and what in ("unparked", "slew_start"):
                at = self.clock.at(mono)
                if not start <= at < end and not self.in_flats_interval(at):
                    raise Violation(f"I2: mount {what} at fake time {at - T0:+.0f} s from the window's start, "
                                    f"outside [0, {WINDOW_S:.0f})"
                                    + (" and outside the flats' intervals" if self.flats else ""))

    def check_i6(self):
        im = self.p.imaging

        def done():
            return (im.progress.batch - 1) * len(im.plan) + im.progress.frame

        if not self.wait_for(lambda: done() == im.frames_on_disk, 1.0):
            raise Violation(f"I6: the sequence counts {done()} frames done, {im.frames_on_disk} are on disk")

    def check_done_secured(self):
        if self.ex is not None and self.ex.finished.is_set() and not self.running:
            if self.state() != State.DONE.value:
                raise Violation(f"the night finished in {self.state()}")
            if not self.secured():
                raise Violation(f"done with the mount {'parked' if self.p.mount.parked else 'out'} and the dome "
                                f"{'open' if self.p.dome.shutter_open else 'closed'}")

    def longest_unsafe_open(self) -> tuple[float, float, float, float]:
        """The longest stretch, while an executor ran, with the weather device unsafe and the dome open
        or the mount out: (wall-clock seconds, fake-clock seconds), from the stand-in devices' logs; then
        the same over the stretches with no park failed since the rig was last parked and closed."""
        events = sorted([(t, "truth", u) for t, u in self.truth] +
                        [(t, dev, what) for t, dev, what in self.p.log])
        unsafe, mount_out, dome_open = False, True, False  # the stand-in mount starts unparked
        since, secured_at, last_secured, bad = None, None, float("-inf"), []
        for t, kind, what in events:
            if kind == "truth":
                unsafe = what
            elif kind == "mount" and what in ("unparked", "parked"):
                mount_out = what == "unparked"
            elif kind == "dome" and what in ("opened", "closed"):
                dome_open = what == "opened"
            if not (mount_out or dome_open):
                last_secured = t
            if unsafe and (mount_out or dome_open):
                if since is None:
                    since, secured_at = t, last_secured
            elif since is not None:
                bad.append((since, t, secured_at))
                since = None
        now = time.monotonic()
        if since is not None:
            bad.append((since, now, secured_at))
        wall = fake = clean_wall = clean_fake = 0.0
        for start, end, secured_at in bad:
            for run_start, run_end in self.runs:
                lo, hi = max(start, run_start), min(end, run_end if run_end is not None else now)
                if hi > lo:
                    wall = max(wall, hi - lo)
                    fake = max(fake, self.clock.at(hi) - self.clock.at(lo))
                    # clean: no park failed since the rig was last parked and closed
                    if not any(secured_at <= t <= hi for t in self.park_failed_at):
                        clean_wall = max(clean_wall, hi - lo)
                        clean_fake = max(clean_fake, self.clock.at(hi) - self.clock.at(lo))
        return wall, fake, clean_wall, clean_fake


# ---- the hypothesis state machine ------------------------------------------------------------
class NightModel(RuleBasedStateMachine):
    harness: NightHarness | None = None

    @initialize(start=st.sampled_from([-10 * HOUR, -30.0, 0.0, 1.0, 600.0, 2 * HOUR, 2 * HOUR, WINDOW_S - 20.0,
                                       -1000.0, WINDOW_S + 400.0]),  # (inside the dusk / dawn flats' interval)
                guider=st.booleans(), batches=st.sampled_from([None, None, 3]), flats=st.booleans())
    def begin(self, start, guider, batches, flats):
        self.harness = NightHarness(T0 + start, guider, batches, flats)

    def teardown(self):
        if self.harness is not None:
            self.harness.close()

    @rule(status=st.sampled_from(["ok", "ok", "alert", "lost"]))
    def weather(self, status):
        STATS.steps += 1
        self.harness.weather(status)

    @rule(status=st.sampled_from(["alert", "lost"]))
    def rain_when_out(self, status):
        STATS.steps += 1
        self.harness.rain_when_out(status)

    @rule(dt=st.sampled_from([1.0, 5.0, 30.0, SAFE_FOR + 1, 600.0, 2 * HOUR]))
    def advance(self, dt):
        STATS.steps += 1
        self.harness.advance(dt)

    @rule(which=st.sampled_from(["dusk", "dawn"]))
    def twilight(self, which):
        STATS.steps += 1
        self.harness.twilight(which)

    @rule(extra=st.sampled_from([0.0, 1.0, 3 * HOUR]))
    def past_the_end(self, extra):
        STATS.steps += 1
        self.harness.past_end(extra)

    @rule(hour=st.one_of(st.floats(0.0, WINDOW_S / HOUR), st.floats(-18.0, 30.0)),  # half of them in the window
          weather=st.sampled_from([None, None, "ok", "alert", "lost"]))  # how the weather changed while down
    def restart(self, hour, weather):
        STATS.steps += 1
        self.harness.restart(T0 + hour * HOUR, weather)

    @rule(kind=st.sampled_from(["park", "close"]), n=st.integers(1, 3))
    def park_refused(self, kind, n):  # the mount refuses to park / the dome to close, n times
        STATS.steps += 1
        self.harness.fault(kind, n)

    @rule()
    def slew_fails(self):
        STATS.steps += 1
        self.harness.fault("slew", 1)

    @rule(n=st.integers(1, 3))
    def frames_fail(self, n):
        STATS.steps += 1
        self.harness.fault("frame", n)

    @rule()
    def devices_gone_or_back(self):
        STATS.steps += 1
        self.harness.fault("devices_gone", 1)

    @rule(full=st.booleans())
    def store_full(self, full):
        STATS.steps += 1
        self.harness.store_full(full)

    @precondition(lambda self: self.harness is not None and self.harness.p.guiding is not None)
    @rule(lost=st.booleans())
    def guide_star(self, lost):
        STATS.steps += 1
        self.harness.star_lost(lost)

    @rule(abort=st.booleans())
    def stop(self, abort):
        STATS.steps += 1
        self.harness.stop(abort)

    @invariant()
    def invariants(self):
        if self.harness is not None:
            self.harness.check()


TestNightModel = NightModel.TestCase
# No shrinking: a failing example waits for the executor up to a second per check, so shrinking would
# take minutes; the unshrunk steps (at most 15) are printed and short enough to read.
TestNightModel.settings = settings(max_examples=250, stateful_step_count=15, deadline=None,
                                   phases=[Phase.explicit, Phase.reuse, Phase.generate],
                                   suppress_health_check=list(HealthCheck))
TestNightModel = pytest.mark.timeout(240)(TestNightModel)


# ---- the checker catches what it should -------------------------------------------------------
def test_the_checks_catch_a_conflict_an_unpark_outside_the_window_and_a_lost_frame():
    h = NightHarness(T0 - HOUR, guider=False, batches=None)  # before dark: securing, then waiting
    try:
        h.check()
        h.p.mount.conflicts.append("slew while parking")
        with pytest.raises(Violation, match="motion during a park"):
            h.check()
        h.p.mount.conflicts.clear()
        h.p.log.append((time.monotonic(), "mount", "unparked"))  # as if unparked now, an hour before dark
        with pytest.raises(Violation, match="I2"):
            h.check()
        h.p.imaging.frames_on_disk += 1  # a frame on disk the sequence did not count
        with pytest.raises(Violation, match="I6"):
            h.check()
        h.p.imaging.frames_on_disk -= 1
    finally:
        h.close()


def test_the_i1_check_fails_when_the_park_never_comes():
    h = NightHarness(T0 + 1.0, guider=False, batches=None)
    try:
        h.sync()
        h.check()
        h.rig.arbiter.secure = lambda what, fn: []  # a broken arbiter: the park "succeeds" without moving
        h.p.mount.parked = False
        h.weather("alert")
        with pytest.raises(Violation, match="I1"):
            h.check()
    finally:
        h.close()


def test_a_restart_while_the_indiserver_is_gone_waits_for_it_instead_of_crashing():
    """Found by the model (2026-12-05): run() raised from rig.devices() before its loop; fixed since."""
    h = NightHarness(T0 + 1.0, guider=False, batches=None)
    try:
        h.sync()
        h.cfg.safety.park_retry = 0.05  # the executor looks for the devices again this often (wall s)
        h.p.faults.devices_gone = True
        h.stop_executor()
        h.rig.stop_event = threading.Event()
        h._start()
        assert not h.wait_for(lambda: not h.running, 0.3), h.crashes[0] if h.crashes else "the loop ended"
        assert any("no devices" in e for e in h.rig.report.errors)
        h.p.faults.devices_gone = False  # the indiserver is back: the night resumes
        assert h.wait_for(lambda: h.state() is not None, 2.0)
        h.sync()
        h.check()
    finally:
        h.close()


def test_a_restart_in_the_rain_does_not_open_the_dome_before_a_fresh_weather_reading():
    """Found while building the model (2026-12-05): resume() trusted the saved weather_status and the
    watch began after the resume's actions, so a restart in the rain from imaging opened the dome,
    unparked and slewed before it parked; fixed since (a first weather reading before the first step)."""
    h = NightHarness(T0 + 1.0, guider=False, batches=None)
    try:
        h.sync()
        assert h.wait_for(lambda: h.state() == State.IMAGING.value)
        h.stop_executor()  # the master dies while imaging; it rains; the rig was closed meanwhile
        h.p.weather.set("alert")
        h.p.mount.parked, h.p.dome.shutter_open = True, False
        seen = len(h.p.log)
        h.rig.stop_event = threading.Event()
        h.clock.set(h.clock() + 600.0)
        h._start()
        assert h.wait_for(h.secured)
        first = h.ex.timeline[0]
        moved = [what for _, _, what in h.p.log[seen:] if what in ("opened", "unparked", "slew_start")]
        assert first["to"] != State.SLEWING.value and moved == [], (
            f"restarted in the rain, the night went to {first['to']} ({first['reason']}) and the devices did {moved} "
            "before it parked")
    finally:
        h.close()


def test_stop_while_the_guide_star_is_lost_ends_the_night():
    """Found while building the model (2026-12-05): `stop` without --abort waited for the frame under
    way, which was held for the guide star and never began: the night went on to the window's end."""
    h = NightHarness(T0 + 1.0, guider=True, batches=None)
    try:
        h.sync()
        assert h.wait_for(lambda: h.state() == State.IMAGING.value)
        h.p.guiding.lost = True
        time.sleep(0.05)  # the frame under way (EXPOSURE s) ends; the next one is held for the star
        h.stop(abort=False)
        for _ in range(10):
            h.tick(60.0)
        assert h.wait_for(lambda: h.ex.finished.is_set()), f"still {h.state()} 10 fake min after stop"
    finally:
        h.close()


def test_with_calibration_the_mount_is_out_in_twilight_only_in_the_flats_intervals():
    """Calibration on: the dusk flats point the mount an hour before the window (I2 allows it inside
    their interval only), the dawn flats after it, and the night still ends parked and closed (I3)."""
    h = NightHarness(DUSK[0] - 600.0, guider=False, batches=None, flats=True)
    try:
        h.sync()
        h.check()
        h.twilight("dusk")
        states = lambda: [t["to"] for t in h.ex.timeline]  # noqa: E731
        assert h.wait_for(lambda: states()[-3:] == ["dusk_flats", "securing", "waiting_dark"]), states()
        assert all(p.flats_calls and p.flats_calls[0][0].direction == "dusk" for p in h.p.participants)
        h.check()  # the unpark and the slews inside the dusk interval pass I2
        h.p.log.append((time.monotonic(), "mount", "unparked"))  # as if unparked now, between dusk and dark
        h.set_clock(DUSK[1] + FLATS_OVERRUN + 1.0)
        h.p.log[-1] = (time.monotonic(), "mount", "unparked")
        with pytest.raises(Violation, match="outside the flats' intervals"):
            h.check_i2()
        h.twilight("dawn")
        assert h.wait_for(lambda: h.ex.finished.is_set() or h.state() in ("dawn_flats", "parking", "calibrating"))
        h.past_end(0.0)
        seen = states()
        assert {"waiting_dawn", "dawn_flats", "calibrating", "done"} <= set(seen), seen
        h.check_done_secured()
    finally:
        h.close()
