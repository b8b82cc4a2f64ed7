"""The master's night executor: runs the actions of the pure machine (indisync.night.machine) on the
real devices and nodes, and feeds back what happened as events.

One loop owns the machine: it takes events from a queue (answers of actions, weather updates, the
`stop` command) or, every second without one, a clock tick; steps the machine; publishes, logs and
saves the night's state when it changes; and starts the actions. Long actions (cool, slew, expose,
refocus, park, ...) each run on their own thread and answer with an event, so a rain alert is
acted on within a poll period even in the middle of a 600 s frame: the exposure is aborted on
every node, the guider stops and the mount parks at once, on their own threads.

The imaging sequence itself (MasterProgress, refocus triggers, the frame retries) is here too:
the machine decides *whether* the next frame may start, this decides *which* frame it is.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import uuid
from datetime import datetime, timezone

from ..errors import IndisyncError
from ..night.machine import ANSWERS, Action, Ev, NightPlan, Snapshot, State, describe, resume, start, step
from ..night.meridian import FlipSettings
from ..protocol import messages
from ..protocol.registry import gather
from ..sequence.state_store import save_master_progress
from .master import FRAME_ATTEMPTS, RETRY_S
from .night_center import centering_timeout, run_centering

log = logging.getLogger(__name__)

NIGHT_SECTION = "night"
TICK_S = 1.0  # a clock event at least this often
READOUT_MARGIN_S = 5.0  # a frame "ends" this long after its exposure: download and write
COOL_MARGIN_S = 30.0  # beyond the cooling timeout, for the slowest node's answer
WARM_WAIT_S = 30.0
DEFAULT_COOL_TIMEOUT_S = 900.0
COMMAND_TIMEOUT_S = 120.0  # dome, park, unpark
PIER_SIDE_WAIT_S = 5.0  # after the flip slew ended Ok, how long TELESCOPE_PIER_SIDE may take to follow


def mount_site(mount) -> tuple[float, float, float] | None:
    """(latitude, longitude east 0..360, elevation) from the mount's GEOGRAPHIC_COORD, or None."""
    if mount is None:
        return None
    if hasattr(mount, "site"):
        return mount.site()
    snap = mount.client.snapshot(mount.name, "GEOGRAPHIC_COORD")
    if snap is None:
        return None
    return snap.values.get("LAT"), snap.values.get("LONG"), snap.values.get("ELEV", 0.0)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else messages.now_iso(datetime.fromtimestamp(epoch, timezone.utc))


def _stamp(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class NightRunner:
    def __init__(self, master):
        self.master = master
        self.cfg = master.cfg
        self.events: queue.Queue = queue.Queue()
        self.snapshot: Snapshot | None = None
        self.plan: NightPlan | None = None
        self.finished = threading.Event()
        self.aborting = threading.Event()  # set by abort_exposures: the frame under way is not counted
        self.timeline: list[dict] = []  # every transition {at, from, to, reason}, for the demo and tests
        self._threads: list[threading.Thread] = []
        self._longitude: float | None = None  # east degrees, for the target's hour angle (the flip)
        self._flip_report: dict | None = None  # the flip just done, reported with the first frame after it
        self._last_frame_end: float | None = None  # epoch s: the end of the last frame (the flip's duration)
        self.flips: list[dict] = []  # every flip done: durations, for the benchmark and tests

    # ---- setup ----------------------------------------------------------------------------------
    def build_plan(self, devices) -> NightPlan:
        cfg, night = self.cfg, self.cfg.night
        has_mount = getattr(devices, "mount", None) is not None
        weather = getattr(cfg.indi, "weather", None) is not None
        cooling = getattr(getattr(cfg, "camera", None), "cooling", None)
        timeouts = dict(NightPlan().timeouts)
        timeouts[State.COOLING.value] = (cooling.timeout if cooling else DEFAULT_COOL_TIMEOUT_S) + 2 * COOL_MARGIN_S
        if night is not None:
            timeouts[State.SLEWING.value] = night.slew_timeout + COMMAND_TIMEOUT_S
        slew = bool(cfg.master.target_coords is not None and has_mount)
        center = bool(slew and night is not None and night.center)
        if night is not None and night.center and not slew:
            log.warning("night.center is on, but centring needs master.target with ra/dec and a mount: "
                        "the night will not centre")
        if center:
            timeouts[State.CENTERING.value] = centering_timeout(cfg.acquire)
        flip = cfg.flip is not None and cfg.master.target_coords is not None and has_mount
        flip_settings = cfg.flip or FlipSettings()
        if flip:  # the hold for the flip (at most the longest frame) + the slew + the pier side's check
            longest = max((f.delay_before + f.exposure + READOUT_MARGIN_S for f in self.master.plan), default=0.0)
            flip_slew_s = night.slew_timeout if night is not None else COMMAND_TIMEOUT_S
            timeouts[State.FLIPPING.value] = longest + flip_slew_s + COMMAND_TIMEOUT_S + PIER_SIDE_WAIT_S
        return NightPlan(
            cool=bool(night and night.cool),
            slew=slew,
            center=center,
            center_on_failure=cfg.acquire.on_failure,
            guide=self.master.guiding is not None,
            park_at_end=bool(night and night.park_at_end and (has_mount or getattr(devices, "dome", None))),
            warm_at_end=bool(night and night.warm_at_end),
            weather=weather,
            flip=flip,
            flip_settings=flip_settings,
            safe_for=cfg.safety.safe_for,
            stale_after=cfg.safety.stale_after,
            park_retry=cfg.safety.park_retry,
            timeouts=timeouts,
        )

    def window(self, devices, now: float) -> tuple[float | None, float | None, str | None]:
        """(start, end, note) of the usable window, epoch seconds; (None, None) without night:."""
        if self.cfg.night is None:
            return None, None, None
        from ..astro.site import compare_sites, night_windows
        from ..night.settings import SiteSettings

        found = None
        try:
            found = mount_site(getattr(devices, "mount", None))
        except Exception as exc:  # noqa: BLE001 - only a cross-check when the config has a site
            log.warning("could not read the mount's GEOGRAPHIC_COORD: %s", exc)
        site = self.cfg.site
        if site is not None:
            mismatch = compare_sites(site, found)
            if mismatch:
                log.warning(mismatch)
                self.master.link.error(mismatch)
        elif found is not None and found[0] is not None:
            lat, lon, elev = found
            site = SiteSettings(latitude=lat, longitude=((lon + 180.0) % 360.0) - 180.0, elevation=elev or 0.0)
            log.info("site from the mount's GEOGRAPHIC_COORD: %.4f, %.4f E", site.latitude, site.longitude_east)
        else:
            raise IndisyncError("night: needs a site: no site: section and no GEOGRAPHIC_COORD from the mount; add "
                                "site: {latitude: .., longitude: .., elevation: ..}")
        windows = night_windows(site, self.cfg.night, self.cfg.master.target_coords,
                                datetime.fromtimestamp(now, timezone.utc))
        log.info("tonight: %s", windows.to_dict())
        if windows.usable is None:
            return now, now, "no usable window tonight (dark, target altitude and end_at do not overlap)"
        start_at = windows.usable.start.timestamp() if windows.usable.start else now
        # Already open: the search began at ``now``, but datetime keeps microseconds and rounds, so the
        # round trip may land a hair after ``now`` (a needless second in waiting_dark).
        start_at = min(start_at, now) if start_at - now < 1.0 else start_at
        end_at = windows.usable.end.timestamp() if windows.usable.end else None
        return start_at, end_at, None

    def next_frame_facts(self) -> tuple[float, bool]:
        """(seconds the next frame takes, the sequence is finished)."""
        m = self.master
        finished = m.progress.finished(self.cfg.master.batches)
        frame = m.progress.next_frame(m.plan) or (m.plan[0] if m.plan else None)
        if frame is None:
            return 0.0, finished
        return frame.delay_before + frame.exposure + READOUT_MARGIN_S, finished

    # ---- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        m = self.master
        devices = m.supervisor.get()
        self.plan = self.build_plan(devices)
        if self.plan.flip:
            from .night_flip import site_longitude

            self._longitude = site_longitude(self, devices)
            if self._longitude is None:
                log.error("flip: no site longitude (no site: section, no GEOGRAPHIC_COORD): the night will not flip")
                m.link.error("flip: no site longitude (add site: {latitude, longitude}); the night will not flip")
        now = time.time()
        start_at, end_at, note = self.window(devices, now)
        duration, finished = self.next_frame_facts()
        saved = m.store.get(NIGHT_SECTION)
        if saved:
            snap, actions = resume(Snapshot.from_dict(saved), now, self.plan, start_at, end_at, duration, finished)
            log.info("night: resuming (saved state %s)", saved.get("state"))
        else:
            snap, actions = start(now, self.plan, start_at, end_at, duration, finished)
        if note:
            snap.reason = note
        self._changed(None, snap)
        self._run_actions(actions)
        if self.plan.weather:
            self._spawn("weather-watch", self._watch_weather, answer=None)
        while not m.stop_event.is_set() and not self.finished.is_set():
            try:
                event, data = self.events.get(timeout=TICK_S)
            except queue.Empty:
                event, data = Ev.CLOCK, {}
            previous = self.snapshot
            new, actions = step(previous, event, time.time(), self.plan, data)
            if event is Ev.COOLED and data.get("missing"):
                new.warnings = sorted(set(new.warnings) | set(data["missing"]))
            self._changed(previous, new)
            self._run_actions(actions)
        log.info("night: %s (%s); %d frames", self.snapshot.state, self.snapshot.reason, m.frames)

    def post(self, event: Ev, **data) -> None:
        self.events.put((event, data))

    def stop_night(self, abort: bool) -> None:
        """`indisync stop`: end the night as at dawn."""
        self.post(Ev.STOP, abort=abort)

    # ---- reporting ------------------------------------------------------------------------------
    def _changed(self, previous: Snapshot | None, new: Snapshot) -> None:
        self.snapshot = new
        moved = previous is None or previous.state != new.state
        if moved or previous.reason != new.reason or previous.until != new.until:
            self.master.store.put(NIGHT_SECTION, new.to_dict())
            night = describe(new)
            self.master.link.update_state(night={"state": night["state"], "since": _iso(night["since"]),
                                                 "until": _iso(night["until"]), "reason": (night["reason"] or "")[:500]})
        if moved:
            before = previous.state if previous is not None else None
            self.timeline.append({"at": time.time(), "from": before, "to": new.state, "reason": new.reason})
            self.master.link.event("night_state", **{"from": before, "to": new.state, "reason": new.reason[:500]})
            until = f" until {_stamp(new.until)}" if new.until is not None else ""
            log.info("night: %s -> %s%s: %s", before or "(start)", new.state, until, new.reason)

    # ---- actions --------------------------------------------------------------------------------
    def _run_actions(self, actions: list[Action]) -> None:
        for action in actions:
            handler = getattr(self, f"_do_{action.kind}")
            if action.args:
                handler = functools.partial(handler, **action.args)
            if action.kind == "finish":
                handler()
            else:
                answer = ANSWERS.get(action.kind)
                self._spawn(action.kind, handler, answer=answer)

    def _spawn(self, name: str, fn, answer) -> None:
        """Run ``fn`` on its own thread; its return (event, data) is posted. A failure is posted as the
        action's failure event (never a silent death)."""

        def body():
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - every action answers, failed or not
                log.exception("night action %s failed", name)
                result = self._failure(name, answer, exc)
            if result is not None:
                if result[0] is Ev.FRAME_DONE:
                    self._last_frame_end = time.time()  # every node's exposure has ended
                if result[0] in (Ev.SLEWED, Ev.FRAME_DONE):
                    result = result[0], {**self._pointing(), **result[1]}
                self.post(result[0], **result[1])

        thread = threading.Thread(target=body, name=f"night-{name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _failure(self, name: str, answer, exc: Exception):
        reason = f"{name}: {exc}"[:500]
        if not answer:
            return None
        if answer[-1] in (Ev.SLEW_FAILED, Ev.PARK_FAILED, Ev.FLIP_FAILED):
            # a flip that raised (indiserver gone mid-flip, ...) is a failed flip, never a "flipped"
            return answer[-1], {"reason": reason}
        if answer[0] is Ev.COOLED:
            return Ev.COOLED, {"missing": ["(cooling failed)"], "reason": reason}
        if answer[0] is Ev.FRAME_DONE:
            facts = self.next_frame_facts()
            return Ev.FRAME_DONE, {"ok": False, "aborted": self.aborting.is_set(), "next_duration": facts[0],
                                   "finished": facts[1], "reason": reason}
        return answer[0], {"ok": False, "reason": reason}

    def _devices(self):
        return self.master.supervisor.get()

    def _do_finish(self) -> None:
        self.finished.set()

    # cooling -------------------------------------------------------------------------------------
    def _do_cool(self):
        m = self.master
        cooling = getattr(getattr(self.cfg, "camera", None), "cooling", None)
        timeout = cooling.timeout if cooling else DEFAULT_COOL_TIMEOUT_S
        if "cool" not in messages.COMMANDS:
            log.warning("this indisync has no `cool` command: cooling skipped")
            return Ev.COOLED, {"missing": []}
        own: dict = {}
        thread = None
        if hasattr(m, "cmd_cool"):
            def own_cool():
                try:
                    own["result"] = m.cmd_cool(_command("cool", {}), lambda *a, **k: None)
                except Exception as exc:  # noqa: BLE001 - named as missing below
                    own["error"] = str(exc)

            thread = threading.Thread(target=own_cool, name="master-cool", daemon=True)
            thread.start()
        log.info("cooling every node (timeout %g s)", timeout)
        result = gather(m.client, m.registry, "cool", {}, timeout=timeout + COOL_MARGIN_S)
        if thread is not None:
            thread.join(timeout + COOL_MARGIN_S)
        missing = list(result.missing)
        for node, reply in result.answered.items():
            reply = reply or {}
            if reply.get("status") != "done" or not (reply.get("result") or {}).get("reached", True):
                missing.append(node)
        if thread is not None and ("error" in own or thread.is_alive()):
            missing.append(m.name)
        if missing:
            msg = f"cooling: {', '.join(sorted(missing))} did not reach the setpoint within {timeout:g} s; going on"
            log.warning(msg)
            m.link.error(msg)
        return Ev.COOLED, {"missing": sorted(missing)}

    def _do_warm(self):
        m = self.master
        if "warm" not in messages.COMMANDS:
            return Ev.WARMED, {}
        if hasattr(m, "cmd_warm"):
            try:
                m.cmd_warm(_command("warm", {}), lambda *a, **k: None)
            except Exception as exc:  # noqa: BLE001 - warming is best effort at the end
                log.warning("master camera did not warm: %s", exc)
        result = gather(m.client, m.registry, "warm", {}, timeout=WARM_WAIT_S)
        if result.missing:
            log.warning("warm: no answer from %s", ", ".join(result.missing))
        return Ev.WARMED, {}

    # mount and dome ------------------------------------------------------------------------------
    def _do_slew(self):
        devices = self._devices()
        target = self.cfg.master.target_coords
        timeout = self.cfg.night.slew_timeout if self.cfg.night else COMMAND_TIMEOUT_S
        dome = getattr(devices, "dome", None)
        if dome is not None:
            if hasattr(dome, "unpark"):
                dome.unpark(COMMAND_TIMEOUT_S)
            dome.open_shutter(COMMAND_TIMEOUT_S)
        mount = devices.mount
        if mount is None:
            return Ev.SLEWED, {}
        _call(mount.unpark, COMMAND_TIMEOUT_S)
        started = time.monotonic()
        if hasattr(mount, "slew_j2000"):
            mount.slew_j2000(target.ra, target.dec, timeout)
        else:
            from ..astro.site import use_offline_iers

            use_offline_iers()
            ra, dec = _j2000_to_jnow(target.ra, target.dec)
            mount.goto(ra / 15.0, dec)
        if hasattr(mount, "set_tracking"):
            mount.set_tracking(True)
        log.info("slewed to %s (%.4f, %.4f J2000) in %.1f s", self.cfg.master.target, target.ra, target.dec,
                 time.monotonic() - started)
        return Ev.SLEWED, {}

    def _do_park(self):
        devices = self._devices()
        started = time.monotonic()
        mount = devices.mount
        if mount is not None:
            if hasattr(mount, "park"):
                mount.park(COMMAND_TIMEOUT_S)
            else:
                from ..devices.props import set_switch

                set_switch(mount.client, mount.name, "TELESCOPE_PARK", ["PARK"], COMMAND_TIMEOUT_S)
        dome = getattr(devices, "dome", None)
        if dome is not None:
            dome.close_shutter(COMMAND_TIMEOUT_S)
            if hasattr(dome, "park"):
                dome.park(COMMAND_TIMEOUT_S)
        log.info("parked%s in %.1f s", " and closed" if dome is not None else "", time.monotonic() - started)
        return Ev.PARKED, {}

    def _do_center(self):
        """Plate-solved centring, then the OTAs' co-alignment (night.center; see node/night_center.py)."""
        return run_centering(self)

    # the meridian flip (node/night_flip.py, loaded with the first flip-watching night) ------------
    def _pointing(self) -> dict:
        from .night_flip import pointing

        return pointing(self)

    def _do_flip(self, at: float | None = None):
        from .night_flip import run_flip

        return run_flip(self, at)

    def _report_flip(self) -> None:
        from .night_flip import report_flip

        report_flip(self)

    # guiding -------------------------------------------------------------------------------------
    def _do_start_guider(self):
        guiding = self.master.guiding
        ok = guiding.start() if guiding is not None else True
        return Ev.GUIDER_STARTED, {"ok": bool(ok)}

    def _do_stop_guider(self):
        if self.master.guiding is not None:
            self.master.guiding.stop()
        return None

    def _do_dither(self):
        guiding = self.master.guiding
        if guiding is not None:
            guiding.frame_done()  # dithers if due; never while anyone is exposing
        return Ev.DITHERED, {}

    def _do_refocus(self):
        reason = getattr(self, "_refocus_reason", None) or "refocus"
        self.master.refocus_all(reason)
        if self.snapshot.state != State.REFOCUSING.value and self.master.guiding is not None:
            self.master.guiding.stop()  # the night left refocusing meanwhile (rain): refocus_all restarted it
        return Ev.REFOCUSED, {}

    # exposures -----------------------------------------------------------------------------------
    def _do_abort_exposures(self):
        """Abort every node's exposure at once: `abort` to each live slave, our own camera directly."""
        m = self.master
        self.aborting.set()
        m.abort_event.set()
        for node in m.registry.live("slave"):
            pending = m.client.send(node, "abort", {"reason": (self.snapshot.reason or "night")[:500]})
            pending.add_done_callback(m.client.forget)
        try:
            camera = self._devices().camera
            if camera is not None:
                camera.abort()
        except IndisyncError as exc:
            log.warning("abort: %s", exc)
        log.warning("every exposure aborted: %s", self.snapshot.reason)
        return None

    def _do_expose(self):
        """Take the next frame of the sequence (through MasterNode.synced_exposure), keep the progress
        and the refocus triggers, and say what comes next."""
        m = self.master
        self.aborting.clear()
        m.abort_event.clear()
        progress, plan = m.progress, m.plan
        frame = progress.next_frame(plan)
        if frame is None:  # a batch completed by an earlier run: on to the next
            progress.start_next_batch()
            save_master_progress(m.store, progress)
            frame = progress.next_frame(plan)
        if m.stop_event.wait(frame.delay_before):
            return None
        if m.guiding is not None:
            m.guiding.wait_until_guiding()
        if self._flip_report is not None:
            self._report_flip()
        record = None
        for attempt in range(1, FRAME_ATTEMPTS + 1):
            if self.aborting.is_set() or m.stop_event.is_set():
                break
            try:
                record = m.synced_exposure(frame)  # returns once every slave's exposure has ended
            except IndisyncError as exc:  # no devices right now (indiserver lost): try again
                log.error("frame %d of batch %d: %s", frame.index + 1, progress.batch, exc)
                m.link.error(f"master frame not taken: {exc}"[:1000])
            if record is not None or self.aborting.is_set() or m.stop_event.wait(RETRY_S):
                break
        if record is None and (self.aborting.is_set() or m.stop_event.is_set()):
            duration, finished = self.next_frame_facts()
            log.warning("frame %d of batch %d aborted: it is taken again when the night resumes",
                        frame.index + 1, progress.batch)
            return Ev.FRAME_DONE, {"ok": False, "aborted": True, "next_duration": duration, "finished": finished}
        if record is None:
            log.error("giving up frame %d of batch %d after %d attempts", frame.index + 1, progress.batch,
                      FRAME_ATTEMPTS)
        if m._retake_due(frame, record):
            # grading.retake: the same slot once more (no dither, no refocus); the rejected frame stays on disk
            duration, finished = self.next_frame_facts()
            return Ev.FRAME_DONE, {"ok": True, "refocus": None, "dither": False,
                                   "next_duration": duration, "finished": finished}
        progress.frame_done()
        save_master_progress(m.store, progress)
        temperature = m._temperature()
        refocus = m.triggers.frame_done(record.hfr if record else None, frame.filter, temperature)
        dither = False
        if progress.batch_complete(plan):
            refocus = m.triggers.batch_done()  # the last batch too: the example ends "GBRGB (focus)"
            progress.start_next_batch()
            save_master_progress(m.store, progress)
        else:
            dither = refocus is None and m.guiding is not None
        self._refocus_reason = str(refocus) if refocus is not None else None
        duration, finished = self.next_frame_facts()
        return Ev.FRAME_DONE, {"ok": record is not None, "refocus": self._refocus_reason, "dither": dither,
                               "next_duration": duration, "finished": finished}

    # weather -------------------------------------------------------------------------------------
    def _watch_weather(self):
        """Poll the weather device; post every new update, and its loss. Runs until the night ends."""
        m = self.master
        last_seen = None
        lost = None
        while not m.stop_event.is_set() and not self.finished.is_set():
            why = None
            status = None
            try:
                weather = getattr(self._devices(), "weather", None)
                if weather is None:
                    why = f"no weather device {self.cfg.indi.weather!r}"
                else:
                    status = weather.status
                    if status is None:
                        why = f"{self.cfg.indi.weather} has no WEATHER_STATUS (driver stopped?)"
            except Exception as exc:  # noqa: BLE001 - an indiserver lost is a weather device lost
                why = f"indiserver: {exc}"
            if why is not None:
                if lost != why:
                    self.post(Ev.WEATHER_LOST, reason=why[:300])
                    lost = why
            else:
                updated = getattr(weather, "last_update", None)
                if updated is not None and (updated != last_seen or lost is not None):
                    self.post(Ev.WEATHER, status=status)  # a new update (or the device is back)
                    last_seen = updated
                lost = None
            m.stop_event.wait(self.cfg.safety.poll)
        return None


def _call(fn, timeout):
    """Devices' methods take a timeout in the agreed interface; the older ones do not."""
    try:
        return fn(timeout)
    except TypeError:
        return fn()


def _command(name: str, args: dict):
    from ..protocol.commands import Command

    return Command(id=uuid.uuid4().hex[:16], name=name, sender="night", args=args, ts=messages.now_iso())


def _j2000_to_jnow(ra_deg: float, dec_deg: float) -> tuple[float, float]:
    try:
        from ..astro.coords import j2000_to_jnow
    except ImportError:
        import astropy.units as u
        from astropy.coordinates import FK5, SkyCoord
        from astropy.time import Time

        now = Time.now()
        c = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs").transform_to(FK5(equinox=now))
        return float(c.ra.deg), float(c.dec.deg)
    return j2000_to_jnow(ra_deg, dec_deg)
