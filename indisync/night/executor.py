"""The night's executor: runs the pure machine's actions (indisync.night.machine) on a ``Rig`` and
feeds back what happened as events.

One loop owns the machine: it takes events from a queue (answers of actions, weather updates, the
`stop` command) or, every second without one, a clock tick; steps the machine; publishes, logs and
saves the night's state when it changes; and starts the actions.

Every action is owned: it runs on a thread of its own under the token of the state (epoch) that
started it (indisync.night.token). Leaving the state cancels the token before the new state's actions
start; every wait inside an action checks it, and an answer from an old epoch is dropped. Mount and
dome motion goes through the rig's arbiter, where a park pre-empts any slew, unpark, open, centring
or flip in flight. An exception in the loop itself never ends the master without a last attempt to
park and close (I5); README lists the invariants.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import ActionCancelled
from ..protocol import messages
from ..protocol.schema import fit_text
from .actions import ACTIONS
from .actions import flip as flip_action
from .actions.motion import last_park
from .actions.weather import first_reading, watch_weather
from .alarms import ended_early
from .events import Clock, Cooled, FrameDone, Payload, Slewed, Stop, payload_for
from .machine import ANSWERS, INSTANT_ACTIONS, Action, Ev, NightPlan, Snapshot, describe, resume, start, step
from .planning import READOUT_MARGIN_S, build_plan, flat_intervals, night_window, site_longitude
from .rig import Rig
from .token import Epochs, Token

log = logging.getLogger(__name__)

NIGHT_SECTION = "night"
TICK_S = 1.0  # a clock event at least this often


clean = fit_text  # a reason fit for MQTT and the log (protocol.schema)


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else messages.now_iso(datetime.fromtimestamp(epoch, timezone.utc))


def stamp(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class Memo:
    """What actions of one night hand to each other."""

    longitude: float | None = None  # east degrees, for the target's hour angle (the flip)
    refocus_reason: str | None = None
    flip_report: dict | None = None  # the flip just done, reported with the first frame after it
    last_frame_end: float | None = None  # epoch s: the end of the last frame (the flip's duration)
    flips: list[dict] = field(default_factory=list)  # every flip done: durations, for the benchmark and tests
    aimed: str | None = None  # the aim's name the mount was last slewed to (the season: a switch is pending)


@dataclass
class Ctx:
    """What an action gets: the rig, tonight's plan, its own token and the night's memo."""

    rig: Rig
    plan: NightPlan
    token: Token
    night: "NightExecutor"

    @property
    def memo(self) -> Memo:
        return self.night.memo

    @property
    def state(self) -> str | None:
        snap = self.night.snapshot
        return None if snap is None else snap.state


class NightExecutor:
    def __init__(self, rig: Rig, clock=time.time, tick: float = TICK_S):
        self.rig = rig
        self.cfg = rig.cfg
        self.clock = clock
        self.tick = tick  # a clock event at least this often (tests tick faster)
        self.events: queue.Queue = queue.Queue()
        self.snapshot: Snapshot | None = None
        self.plan: NightPlan | None = None
        self.finished = threading.Event()
        self.stopping = threading.Event()  # `indisync stop`: no new frame starts (one under way finishes)
        self.epochs = Epochs(rig.stop_event)
        self.memo = Memo()
        self.timeline: list[dict] = []  # every transition {at, from, to, reason}, for the demo and tests
        self.dropped: list[tuple[str, int]] = []  # answers from an old epoch, ignored (event, epoch)
        self._threads: list[threading.Thread] = []

    @property
    def flips(self) -> list[dict]:
        return self.memo.flips

    # ---- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        """The night, from start (or resume) to done. Any exception: a last park and close, then raised."""
        try:
            self._run()
        except BaseException as exc:
            log.exception("the night's loop failed: a last attempt to park and close")
            self.epochs.cancel_all(f"the night's loop failed: {exc}")
            try:
                self.rig.report.error(clean(f"night: the executor failed ({exc}); parking and closing", 1000))
            except Exception:  # noqa: BLE001 - the park below matters more than the report
                log.exception("could not report the failure")
            last_park(self.rig, f"the night's loop failed: {exc}")
            raise
        finally:
            self.finished.set()  # the loop is over: the weather watch and the actions' holds end too

    def _run(self) -> None:
        rig = self.rig
        devices = self._devices_when_ready()
        if devices is None:
            return  # stopped while the rig was unreachable
        season = getattr(rig, "season", None)
        self.plan = build_plan(self.cfg, devices, rig.imaging.plan, rig.guiding() is not None, **(
            {"season": True, "longest": season.longest_exposure()} if season is not None else {}))
        if self.plan.flip:
            self.memo.longitude = site_longitude(self.cfg, devices)
            if self.memo.longitude is None:
                log.error("flip: no site longitude (no site: section, no GEOGRAPHIC_COORD): the night will not flip")
                rig.report.error("flip: no site longitude (add site: {latitude, longitude}); the night will not flip")
        now = self.clock()
        start_at, end_at, note = night_window(self.cfg, devices, now, rig.report, **(
            {"season": season} if season is not None else {}))
        flats = self._flat_intervals(devices, now, start_at, end_at)
        duration, finished = self.next_frame_facts()
        saved = self._saved()
        weather = first_reading(rig, self.cfg) if self.plan.weather else None
        if saved:
            snap, actions = resume(Snapshot.from_dict(saved), now, self.plan, start_at, end_at, duration, finished,
                                   weather, flats)
            log.info("night: resuming (saved state %s)", saved.get("state"))
        else:
            snap, actions = start(now, self.plan, start_at, end_at, duration, finished, weather, flats)
        if note:
            snap.reason = note
        self._changed(None, snap)
        self._run_actions(actions)
        if self.plan.weather:
            self._spawn("weather-watch", lambda ctx: watch_weather(self), None, self.epochs.current)
        while not rig.stop_event.is_set() and not self.finished.is_set():
            try:
                payload, epoch = self.events.get(timeout=self.tick)
            except queue.Empty:
                payload, epoch = Clock(), None
            if epoch is not None and epoch != self.epochs.current.epoch:
                log.info("night: %s of an old state (epoch %d) ignored: the night has moved on", payload.ev.value,
                         epoch)
                self.dropped.append((payload.ev.value, epoch))
                continue
            self.feed(payload.ev, payload)
        log.info("night: %s (%s); %d frames", self.snapshot.state, self.snapshot.reason, rig.frames())

    def feed(self, event: Ev, data: Payload | dict | None = None) -> None:
        """One event into the machine; the state saved and published, the actions started."""
        previous = self.snapshot
        payload = payload_for(event, data)
        new, actions = step(previous, event, self.clock(), self.plan, payload)
        if isinstance(payload, Cooled) and payload.missing:
            new.warnings = sorted(set(new.warnings) | set(payload.missing))
        self._changed(previous, new)
        self._run_actions(actions)

    def _devices_when_ready(self):
        """The rig's devices. At a (re)start with the indiserver unreachable: say so, and try again
        every safety.park_retry s (then the night starts, securing first); None if stopped meanwhile."""
        said = False
        while not self.rig.stop_event.is_set():
            try:
                return self.rig.devices()
            except Exception as exc:  # noqa: BLE001 - no devices yet is a wait, never a crash
                if not said:
                    log.error("night: no devices at the start (%s); trying again every %g s", exc,
                              self.cfg.safety.park_retry)
                    self._say("error", clean(f"night: no devices at the start ({exc}); waiting for them", 1000))
                    said = True
            self.rig.stop_event.wait(self.cfg.safety.park_retry)
        return None

    def _flat_intervals(self, devices, now: float, start_at, end_at) -> tuple:
        """Tonight's sky-flats intervals (with flats.sky); a failure to compute them is said, and the
        night goes on without sky flats."""
        if not self.plan.sky_flats:
            return None, None
        try:
            return flat_intervals(self.cfg, devices, now, start_at, end_at)
        except Exception as exc:  # noqa: BLE001 - no flats tonight is no reason to lose the night
            log.exception("night: the sky flats' intervals could not be computed")
            self._say("error", clean(f"night: no sky flats tonight: their intervals could not be computed ({exc})",
                                     1000))
            return None, None

    def _saved(self) -> dict | None:
        try:
            return self.rig.store.get(NIGHT_SECTION)
        except Exception as exc:  # noqa: BLE001 - a torn state file: start afresh (securing first), said
            log.error("night: the saved state could not be read (%s): starting afresh", exc)
            self.rig.report.error(clean(f"night: saved state unreadable ({exc}); starting afresh", 1000))
            return None

    def post(self, event: Ev | Payload, epoch: int | None = None, **data) -> None:
        """An event for the loop (a payload, or an Ev and its fields); ``epoch``: the answer of an
        action of that epoch (dropped if the night has left it)."""
        payload = event if isinstance(event, Payload) else payload_for(Ev(event), data)
        self.events.put((payload, epoch))

    def stop_night(self, abort: bool) -> None:
        """`indisync stop`: end the night as at dawn. A frame held before it starts (a lost guide star,
        its delay) is not started; one under way finishes, unless ``abort``."""
        self.stopping.set()
        self.post(Stop(abort=abort))

    def next_frame_facts(self) -> tuple[float, bool]:
        """(seconds the next frame takes, the sequence is finished). The season: the next frame of
        the master's season batch; finished: nothing left to image tonight."""
        im = self.rig.imaging
        season = getattr(self.rig, "season", None)
        if season is not None:
            now = self.clock()
            return im.season_next_duration(now) + READOUT_MARGIN_S, season.finished(now)
        finished = im.progress.finished(self.cfg.master.batches)
        frame = im.progress.next_frame(im.plan) or (im.plan[0] if im.plan else None)
        if frame is None:
            return 0.0, finished
        return frame.delay_before + frame.exposure + READOUT_MARGIN_S, finished

    # ---- reporting ------------------------------------------------------------------------------
    def _changed(self, previous: Snapshot | None, new: Snapshot) -> None:
        self.snapshot = new
        moved = previous is None or previous.state != new.state
        if moved:
            # Cancel the old state's actions before anything of the new one starts (I1).
            self.epochs.advance(new.state, new.reason)
        if moved or previous.reason != new.reason or previous.until != new.until:
            self._save(new)
            night = describe(new)
            self._say("update_state", night={"state": night["state"], "since": iso(night["since"]),
                                             "until": iso(night["until"]), "reason": clean(night["reason"])})
        if moved:
            before = previous.state if previous is not None else None
            self.timeline.append({"at": self.clock(), "from": before, "to": new.state, "reason": new.reason})
            self._say("event", "night_state", **{"from": before, "to": new.state, "reason": clean(new.reason)})
            self._alarm_if_ended_early(previous, new)
            until = f" until {stamp(new.until)}" if new.until is not None else ""
            log.info("night: %s -> %s%s: %s", before or "(start)", new.state, until, new.reason)

    def _alarm_if_ended_early(self, previous: Snapshot | None, new: Snapshot) -> None:
        try:
            alarm = ended_early(previous, new, self.clock(), self.stopping.is_set())
            if alarm is not None:
                self.rig.alarm(alarm)  # queued for the alerter's worker: the park is not held up
        except Exception:  # noqa: BLE001 - an alarm must never stand in the night's way
            log.exception("night: could not raise the ended-early alarm")

    def _save(self, snap: Snapshot) -> None:
        try:
            self.rig.store.put(NIGHT_SECTION, snap.to_dict())
        except Exception as exc:  # noqa: BLE001 - a full disk must not end the night (nor skip the park)
            log.error("night: could not save the state (%s); going on", exc)
            self._say("error", clean(f"night: could not save the state: {exc}", 1000))

    def _say(self, what: str, *args, **fields) -> None:
        """Publish; a refused or failed report is logged, never raised into the loop."""
        try:
            getattr(self.rig.report, what)(*args, **fields)
        except Exception as exc:  # noqa: BLE001
            log.error("night: could not publish %s: %s", what, exc)

    # ---- actions --------------------------------------------------------------------------------
    def _run_actions(self, actions: list[Action]) -> None:
        token = self.epochs.current
        for action in actions:
            fn = ACTIONS[action.kind]
            if action.kind in INSTANT_ACTIONS:
                self._instant(action, fn, token)
            else:
                self._spawn(action.kind, fn, ANSWERS.get(action.kind), token, **action.args)

    def _instant(self, action: Action, fn, token: Token) -> None:
        if action.kind == "finish":
            self.finished.set()
            return
        # abort_exposures, stop_guider: quick, but they talk to devices and nodes: off the loop
        self._spawn(action.kind, fn, None, token)

    def _spawn(self, name: str, fn, answer, token: Token, **args) -> None:
        """Run ``fn(ctx, **args)`` on its own thread; its (event, data) is posted with the token's
        epoch. A failure is posted as the action's failure event (never a silent death); a
        cancelled action answers nothing (whoever cancelled it decides)."""
        ctx = Ctx(self.rig, self.plan, token, self)

        def body():
            try:
                result = fn(ctx, **args)
            except ActionCancelled as exc:
                log.info("night action %s cancelled: %s", name, exc)
                return
            except Exception as exc:  # noqa: BLE001 - every action answers, failed or not
                log.exception("night action %s failed", name)
                result = self._failure(name, answer, exc)
            if result is None:
                return
            if isinstance(result, FrameDone):
                self.memo.last_frame_end = time.time()  # every node's exposure has ended
            if isinstance(result, (Slewed, FrameDone)):
                result = result.with_pointing(flip_action.pointing(ctx))
            if result.ev is Ev.PARK_FAILED:
                self._say("error", clean(f"park failed: {result.reason}; trying again in "
                                         f"{self.plan.park_retry:g} s", 1000))
            self.post(result, token.epoch)

        thread = threading.Thread(target=body, name=f"night-{name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _failure(self, name: str, answer, exc: Exception) -> Payload | None:
        """The failure answer of an action that raised: its failure event where it has one."""
        reason = clean(f"{name}: {exc}")
        if not answer:
            return None
        if answer[-1] in (Ev.SLEW_FAILED, Ev.PARK_FAILED, Ev.FLIP_FAILED):
            # a flip that raised (indiserver gone mid-flip, ...) is a failed flip, never a "flipped"
            return payload_for(answer[-1], {"reason": reason})
        if answer[0] is Ev.COOLED:
            return Cooled(missing=("(cooling failed)",), reason=reason)
        if answer[0] is Ev.FRAME_DONE:
            duration, finished = self.next_frame_facts()
            return FrameDone(ok=False, next_duration=duration, finished=finished, reason=reason)
        fields = {"reason": reason}
        if answer[0] in (Ev.CENTERED, Ev.GUIDER_STARTED, Ev.FLATS_DONE):
            fields["ok"] = False
        return payload_for(answer[0], fields)
