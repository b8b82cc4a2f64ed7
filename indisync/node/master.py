"""The master role: runs the imaging sequence, starts every live slave's exposure with its own,
and at each refocus trigger has every node autofocus at once before going on.

Progress (batch, next frame) is on disk after every frame, so a restarted master resumes at the
next frame of its batch. A slave that dies is dropped from the registry and no longer waited for;
one that comes back is taken up again at the next exposure. A failed or missing autofocus is
reported and never blocks the night.

With a scheduler: section the master runs the season instead of master.target / master.sequence
(indisync.season.runtime, node/season_master.py): the scheduler picks the target, the master's batch
is its own plan lines for it, each slave gets its own lines with each exposure, and every frame is
recorded in ``{storage.directory}/indisync.db``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timezone

from ..contracts import (AutofocusArgs, CalibrateArgs, CalibrateResult, ExposeArgs, StopArgs, StopResult,
                         parse_reply)
from ..errors import ExposureAborted, IndisyncError
from ..guiding.guider import Guider
from ..protocol.registry import Barrier
from ..sequence.plan import PlannedFrame, expand_batch
from ..sequence.rotation import validate_checked_filters
from ..sequence.state_store import StateStore, load_master_progress, save_master_progress
from ..sequence.triggers import RefocusTriggers
from ..protocol.messages import now_iso
from ..record.service import NightRecording
from .alarm_watch import MasterAlarmWatch
from .base import NodeBase
from .frame_guiding import FrameGuideRms
from .guiding import MasterGuiding
from .imaging import FrameRequest, take_frame
from .locking import bounded
from .master_rig_state import RigStatePublisher, RigStateReader
from .slave import state_path

log = logging.getLogger(__name__)

SLAVE_MARGIN_S = 30.0  # beyond focus.timeout, for a slave's answer (an exposure's margin: ExposeArgs.MARGIN_S)
# The longest any device_lock wait may take: past it the frame or focus run fails with a reason
# (an autofocus still holding the lock after its own timeout has been asked to abort by then).
DEVICE_LOCK_WAIT_S = 60.0
STRAY_FOCUS_JOIN_S = 30.0  # at close, how long an aborted autofocus run gets to end (one frame)


class MasterNode(NodeBase):
    role = "master"
    needed_devices = ("camera",)

    def __init__(self, cfg):
        # With a guider: section the guide camera and the mount are needed, not just wanted.
        self.needed_devices = ("camera", "guide_camera", "mount") if cfg.guider is not None else ("camera",)
        super().__init__(cfg)
        self.guiding: MasterGuiding | None = None
        self.store = StateStore(state_path(cfg))
        self.progress = load_master_progress(self.store)
        self.night = None  # the night's executor (indisync.night.executor), once run() has started it
        self.plan: list[PlannedFrame] = expand_batch(cfg.master.sequence)
        self.triggers = RefocusTriggers(cfg.master.refocus)
        self.registry = None
        self.client = None
        self.focus_runs: list[dict] = []
        self._stray_focus_threads: list[threading.Thread] = []  # autofocus runs that outlived their wait
        self._guiding_rebuilt = threading.Event()  # the guider was rebuilt on new devices: start it again
        self.frame_guide: FrameGuideRms | None = None  # guiding RMS during each frame, for grading
        self.recording: NightRecording | None = None  # the rig's night log (record: section)
        self._retaken: tuple | None = None  # (batch, frame index) last taken again after a rejection
        self.last_frame_error: str | None = None  # why the master's last frame was not taken (not aborted)
        self.alarm_watch: MasterAlarmWatch | None = None  # nodes offline, clocks, a night standing still
        self.season = None  # indisync.season.runtime.SeasonRuntime with a scheduler: section
        self.season_master = None  # its wiring here (node/season_master.py)
        if cfg.scheduler is not None:
            self._open_season(cfg)

    def _open_season(self, cfg) -> None:
        from ..season.runtime import SeasonRuntime
        from ..season.store import SeasonStore, db_path
        from .season_master import SeasonMaster

        if cfg.site is None:
            raise IndisyncError("scheduler: needs a site: section (latitude, longitude) to know when each target "
                                "is observable; add site: {latitude: .., longitude: .., elevation: ..}")
        store = SeasonStore(db_path(cfg))
        self.season = SeasonRuntime(store, cfg.scheduler, cfg.site, master=self.name, grading=cfg.grading.enabled,
                                    on_change=lambda state: self.link.update_state(season=state),
                                    live=lambda: set(self.registry.live("slave")) if self.registry is not None
                                    else set())
        self.season_master = SeasonMaster(self, self.season, store)
        self.plan = []  # the season's batches are built per target (SeasonMaster.next_frame)
        log.info("season: targets from %s (scheduler: section); master.target and master.sequence are not used",
                 store.path)

    def prepare(self, devices) -> None:
        if self.season_master is not None and devices.filter_wheel is not None:
            from .base import wheel_names

            self.season_master.note(self.name, self.role, wheel_names(devices.filter_wheel) or [])
        wanted = sorted({f.filter for f in self.plan if f.filter})
        if wanted and devices.filter_wheel is None:
            raise IndisyncError(f"the sequence uses filters {wanted} but this node has no filter wheel "
                                "(indi.filter_wheel); remove the slot filters or configure the wheel")
        if wanted:
            validate_checked_filters(wanted, devices.filter_wheel.names)
        if self.cfg.guider is None:
            log.info("no guider: section in the config: guiding and dithering are skipped")
        else:
            self.guiding = self._build_guiding(devices, None)
            # The supervisor owns device lifetime: after an indiserver reconnect the guider is rebuilt
            # on the new devices (the old ones belong to a closed client and never answer again).
            self.supervisor.add_rebuild_hook(self._rebuild_guiding)

    def _build_guiding(self, devices, previous: MasterGuiding | None) -> MasterGuiding:
        """The guider and its night cycle on ``devices``. Rebuilt after a reconnect, it keeps the
        calibration (same mount, same guide camera orientation) and the dither count."""
        calibration = previous.guider.calibration if previous is not None else None
        pulser = None
        if self.cfg.guider.pulse_via == "camera":  # ST4 through the guide camera instead of the mount
            from ..devices.guide_port import open_guide_port

            pulser = open_guide_port(devices.client, self.cfg.indi.guide_camera, self.cfg.indi.property_timeout)
        guider = Guider(devices.guide_camera, devices.mount, self.cfg.guider, calibration=calibration,
                        pulser=pulser)
        guiding = MasterGuiding(guider, self.cfg.master, self.link, self.stop_event)
        if self.frame_guide is None:  # guiding RMS during each frame, for grading; survives a rebuild
            self.frame_guide = FrameGuideRms(lambda: self.guiding.guider.pixel_scale if self.guiding else None)
        guider.add_listener(self.frame_guide.on_event)
        if previous is not None:
            guiding.frames_since_dither = previous.frames_since_dither
            guiding.dithers = previous.dithers
        return guiding

    def _rebuild_guiding(self, devices) -> None:
        """Supervisor hook, after an indiserver reconnect: the old guider's devices are dead. Build a
        new one on the new devices; the next frame starts it (not here: this runs on the supervisor's
        thread, and starting waits for the guide star to settle)."""
        old = self.guiding
        if old is not None:
            try:
                old.guider.stop(timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - it talks to a closed client; it is dropped anyway
                log.warning("the old guider did not stop cleanly: %s", exc)
        self.guiding = self._build_guiding(devices, old)
        self._guiding_rebuilt.set()
        log.info("guider rebuilt on the new devices; guiding restarts before the next frame")

    def start(self) -> None:
        self.recording = NightRecording.for_node(self.cfg, self.link.transport, self.link.topics)
        super().start()
        self.registry = self.link.registry()
        self.registry.start_sweeper()
        self.client = self.link.command_client()
        if self.season_master is not None:
            self.season_master.attach(self.link)
            self.registry.add_listener(lambda node, what: self.season_master.note_wheels())
        self.alarm_watch = MasterAlarmWatch(
            self.cfg, self.raise_alarm, self.registry, frames=lambda: self.frames,
            night=lambda: self.night.snapshot if self.night is not None else None).start()
        self._start_rig_state()

    def _start_rig_state(self) -> None:
        """The ``rig`` state field (weather, mount, dome) for the dashboard, from cached INDI values."""
        publisher = RigStatePublisher(RigStateReader(self.cfg, self.supervisor.get),
                                      lambda rig: self.link.update_state(rig=rig), self.stop_event)
        threading.Thread(target=publisher.run, name="rig-state", daemon=True).start()

    def close(self) -> None:
        if self.alarm_watch is not None:
            self.alarm_watch.stop()
        if self.recording is not None:
            self.recording.close()
        if self.guiding is not None:
            try:
                self.guiding.stop()
            except Exception as exc:  # noqa: BLE001 - a stuck guide camera must not keep the rest open
                log.error("could not stop guiding cleanly: %s", exc)
        self.stop()  # sets abort: an autofocus run that outlived its wait stops at its next frame
        for thread in self._stray_focus_threads:
            thread.join(STRAY_FOCUS_JOIN_S)
            if thread.is_alive():
                log.error("an autofocus run is still running at close (after %gs); closing anyway",
                          STRAY_FOCUS_JOIN_S)
        if self.client is not None:
            self.client.close()
        if self.registry is not None:
            self.registry.stop()
        if self.season is not None:
            self.season.store.close()
        super().close()

    # ---- the night --------------------------------------------------------------------------
    def command_handlers(self):
        return {**super().command_handlers(), "stop": self.cmd_stop, "calibrate": self.cmd_calibrate}

    def cmd_calibrate(self, command, progress) -> CalibrateResult:
        """`indisync flats --panel` / `indisync darks`: panel flats or darks on every node now, the
        sets from the night record (indisync.calib.runs). Refused while the night has the mount out."""
        from ..calib.runs import calibrate_rig
        from .master_rig import dome_closed, rig_participants

        args = CalibrateArgs.from_wire(command.args)
        runner = getattr(self, "night", None)
        state = runner.snapshot.state if runner is not None and runner.snapshot is not None else None
        if self.registry is None or self.client is None:
            raise IndisyncError("the master is still starting; try again in a few seconds")
        return calibrate_rig(args, rig_participants(self), self.cfg, state, self.stop_event,
                             covered=lambda: dome_closed(self))

    def cmd_stop(self, command, progress) -> StopResult:
        """`indisync stop`: end the night as at dawn (finish or, with abort, abort the frame; park; warm)."""
        args = StopArgs.from_wire(command.args)
        runner = getattr(self, "night", None)
        if runner is None:
            raise IndisyncError("the night has not started yet; try again in a few seconds")
        runner.stop_night(args.abort)
        return StopResult(stopping=True, abort=args.abort)

    def run(self) -> None:
        """The night, as the state machine in indisync.night says, run by indisync.night.executor on
        this master's rig (node/master_rig.py)."""
        from ..night.executor import NightExecutor
        from .master_rig import build_rig

        # Retained states arrive right after subscribing; give live slaves a heartbeat to show up.
        self.stop_event.wait(self.cfg.mqtt.heartbeat * 1.5)
        if self.season is None and self.progress.align_with(self.plan):
            log.warning("the sequence changed since the last run: batch %d starts again", self.progress.batch)
        save_master_progress(self.store, self.progress)
        self.night = NightExecutor(build_rig(self))
        if self.season is not None:
            self.link.update_state(season=self.season.state())
        self.night.run()
        self.link.update_state(phase="idle", exposure=None)
        log.info("sequence finished: %d frames, batch %d", self.frames, self.progress.batch)
        if self.recording is not None and not self.stop_event.is_set():
            self.recording.write_report()  # logged; never raises
        if not self.stop_event.is_set():
            self._night_summary()

    def _night_summary(self) -> None:
        """The end-of-night alarm (level info): frames per node and filter, shutter-open %, autofocus
        runs, failures and the report's path, from the report's data; never raises."""
        import json

        from ..alerts import causes as alarms

        try:
            path = self.recording.report_path if self.recording is not None else None
            data = {}
            if path is not None:
                data = json.loads((path.parent / "report.json").read_text())
            window = data.get("window") or {}
            night = data.get("night") or datetime.now(timezone.utc).strftime("%Y-%m-%d")
            self.raise_alarm(alarms.night_summary(
                night, data.get("nodes") or {}, len(data.get("failures") or []), str(path) if path else None,
                frames_total=self.frames,
                window=f"{window['start']} to {window['end']}" if window.get("start") and window.get("end") else None))
        except Exception:  # noqa: BLE001 - the summary is a courtesy: the night has ended either way
            log.exception("could not send the night's summary")

    def synced_exposure(self, frame: PlannedFrame):
        devices = self.supervisor.get()
        exposure_id = str(self.progress.new_exposure_id())
        save_master_progress(self.store, self.progress)
        slaves = self.registry.live("slave")
        season = self.season_master
        target = frame.target if season is not None else self.cfg.master.target
        args = ExposeArgs(duration=frame.exposure, frame_type=frame.type, binning=frame.binning,
                          target=target, batch=self.progress.batch, exposure_id=exposure_id,
                          sync=self.cfg.master.sync)
        # the season: each slave rotates through its own lines that still need frames (none: idle)
        plans = season.slave_plans(slaves, time.time()) if season is not None else {}
        barrier = Barrier(slaves, self.registry)
        request = FrameRequest(
            duration=frame.exposure, filter_name=frame.filter, frame_type=frame.type, binning=frame.binning,
            target=target, suffix=frame.suffix or frame.filter, batch=self.progress.batch,
            seq_index=frame.index + 1, exposure_id=int(exposure_id),
            clock_offset_s=self.link.clock_offset,  # 0: the master's clock is the reference
        )
        pendings = []

        def on_start(req: FrameRequest) -> None:
            nonlocal args
            if self.frame_guide is not None:
                self.frame_guide.begin()
            # The wheel is in place: command the slaves now, then open our own shutter at once, or
            # with master.start_lead at a time every node is told (take_frame waits for it).
            start = now_iso()
            if self.cfg.master.start_lead > 0:
                req.start_at = time.time() + self.cfg.master.start_lead
                start = now_iso(datetime.fromtimestamp(req.start_at, timezone.utc))
                args = dataclasses.replace(args, start_at=start)
            for node in barrier.expected:
                mine = args if node not in plans else dataclasses.replace(args, plan=plans[node].wire())
                pending = self.client.send(node, args.command, mine.to_wire())
                pending.add_done_callback(lambda p: barrier.arrive(p.node, p.last))
                pendings.append(pending)
            self.link.update_state(phase="exposing", filter=req.filter_name, exposure={
                "id": exposure_id, "filter": req.filter_name, "start": start, "duration": req.duration})
            self.link.event("exposure_started", exposure_id=exposure_id, filter=req.filter_name,
                            duration=req.duration, frame_type=req.frame_type, start=start)

        if getattr(frame, "idle", False):  # the season: nothing of the master's plan needs a frame now
            record = self._idle_slot(request, on_start, exposure_id)
        else:
            record = self._own_frame(devices, frame, request, on_start, exposure_id, bool(slaves))
        if season is not None and record is not None:
            season.record_master(frame, record, exposure_id)
        if slaves:
            result = barrier.wait(args.reply_timeout())
            for pending in pendings:
                self.client.forget(pending)
            replies = {node: parse_reply(args.command, answer) for node, answer in result.answered.items()}
            if season is not None:
                season.record_slaves(target, replies, plans, exposure_id)
            failed = {node: reply.reason for node, reply in replies.items() if not reply.ok}
            if result.missing or failed:
                log.warning("exposure %s: no frame from %s%s", exposure_id, result.missing or "",
                            f"; failed: {failed}" if failed else "")
                # Said on MQTT too: a slave frame lost in silence is a hole found only at dawn.
                self._report_lost_slave_frames(exposure_id, list(result.missing), failed)
            self.link.update_state(phase="idle")
        return record

    def _idle_slot(self, request: FrameRequest, on_start, exposure_id: str):
        """The season, the master's plan met (when_ota_done: idle) or not allowed now: the slaves
        expose, the master times the exposure without a frame of its own. None: aborted."""
        from .season_master import IdleRecord

        with bounded(self.device_lock, DEVICE_LOCK_WAIT_S, "time the idle master slot"):
            on_start(request)
            log.info("exposure %s: the master idles for %g s (its plan needs nothing now)", exposure_id,
                     request.duration)
            if self.abort_event.wait(request.duration):
                self.last_frame_error = None
                self.link.event("exposure_done", exposure_id=exposure_id, status="aborted", filter=None,
                                reason="aborted during the master's idle slot")
                self.link.update_state(phase="idle", exposure=None)
                return None
            self.link.update_state(phase="waiting", exposure=None)
        return IdleRecord(duration=request.duration)

    def _own_frame(self, devices, frame, request: FrameRequest, on_start, exposure_id: str, slaves: bool):
        record = None
        with bounded(self.device_lock, DEVICE_LOCK_WAIT_S, "take the master frame"):
            try:
                if frame.filter and devices.filter_wheel is not None:
                    devices.filter_wheel.select(frame.filter)
                self.focus_for(devices, frame.filter)  # before the slaves are told to start
                record = take_frame(devices, self.cfg, request, on_start, grader=self.grade_frame,
                                    check_space=self.check_disk)
                self.frames += 1
                self.link.event("exposure_done", exposure_id=exposure_id, status="ok", filter=record.filter_name,
                                file=record.path.name if len(record.path.name) <= 64 else None,
                                **record.event_fields())
                self.link.update_state(phase="waiting" if slaves else "idle", exposure=None, frames=self.frames,
                                       hfr=record.hfr, stars=record.stars)
                self.publish_preview(record.path)
            except IndisyncError as exc:
                aborted = isinstance(exc, ExposureAborted)  # the night aborted it (rain, stop --abort): never written
                self.last_frame_error = None if aborted else str(exc)
                log.error("master exposure %s %s: %s", exposure_id, "aborted" if aborted else "failed", exc)
                self.link.event("exposure_done", exposure_id=exposure_id, status="aborted" if aborted else "failed",
                                filter=frame.filter, reason=str(exc)[:500])
                self.link.update_state(phase="idle", exposure=None)
        return record

    def _report_lost_slave_frames(self, exposure_id: str, missing: list, failed: dict) -> None:
        parts = [f"{node}: no answer within the exposure + {ExposeArgs.MARGIN_S:g} s" for node in missing]
        parts += [f"{node}: {why or 'failed'}" for node, why in failed.items()]
        try:
            self.link.error(f"exposure {exposure_id}: no slave frame from " + "; ".join(parts)[:900])
        except Exception:  # noqa: BLE001 - the log line above has it; reporting never stops a frame
            log.exception("could not report the lost slave frames")

    def _retake_due(self, frame: PlannedFrame, record) -> bool:
        """True once per slot whose master frame was rejected, with grading.retake on."""
        grade = getattr(record, "grade", None)
        key = (self.progress.batch, frame.index)
        if not self.cfg.grading.retake or grade is None or grade.accepted or self._retaken == key:
            return False
        self._retaken = key
        log.warning("frame %d of batch %d rejected (%s): taking it once more", frame.index + 1,
                    self.progress.batch, grade.reason)
        return True

    def grade_frame(self, filter_name, hfr, stars):
        guide_rms = self.frame_guide.end() if self.frame_guide is not None else None
        return self.grader.grade(filter_name, hfr, stars, guide_rms), guide_rms

    def refocus_all(self, reason: str) -> None:
        """Every node autofocuses at once; wait for all (bounded), report who failed, go on. Guiding
        is the caller's: the night's refocus stops it before and starts it after
        (indisync.night.actions.guide)."""
        log.info("refocus (%s)", reason)
        started = time.monotonic()
        slaves = self.registry.live("slave")
        barrier = Barrier(slaves, self.registry)
        pendings = []
        args = AutofocusArgs(reason=reason[:500])
        for node in barrier.expected:
            pending = self.client.send(node, args.command, args.to_wire())
            pending.add_done_callback(lambda p: barrier.arrive(p.node, p.last))
            pendings.append(pending)
        own = _FocusOutcome()
        lock_wait = self.cfg.focus.timeout + SLAVE_MARGIN_S  # this rig's focus.timeout, not AutofocusArgs' default

        def own_focus() -> None:
            try:
                with bounded(self.device_lock, DEVICE_LOCK_WAIT_S, "autofocus the master"):
                    self.abort_event.clear()
                    own.set(result=self.autofocus(reason=reason))
            except Exception as exc:  # noqa: BLE001 - reported below; the night goes on
                log.error("master autofocus failed: %s", exc)
                own.set(error=str(exc))

        thread = threading.Thread(target=own_focus, name="master-autofocus", daemon=True)
        thread.start()
        result = barrier.wait(lock_wait)
        thread.join(max(0.0, lock_wait - (time.monotonic() - started)) + 1.0)
        for pending in pendings:
            self.client.forget(pending)
        if thread.is_alive():
            # Still running: its result is not ours to read. Ask it to stop (the routine polls the
            # abort flag between frames) and keep it accounted, so the next device_lock wait (bounded)
            # and close() know of it; the night goes on with this node's focus counted as failed.
            self.abort_event.set()
            self._stray_focus_threads = [t for t in self._stray_focus_threads if t.is_alive()] + [thread]
            log.error("master autofocus still running after %gs; asked it to stop, going on", lock_wait)
            own.set(error=f"still running after {lock_wait:g} s (focus.timeout + {SLAVE_MARGIN_S:g} s); aborted")
        ok_result, error = own.get()
        outcome = {self.name: ok_result.summary() if ok_result is not None else {"status": "failed", "reason": error}}
        for node, answer in result.answered.items():
            reply = parse_reply(args.command, answer)
            focus = reply.result  # None unless the reply is done and fits AutofocusResult
            outcome[node] = {"status": "ok" if focus is not None and focus.ok else "failed",
                             "position": None if focus is None else focus.position,
                             "reason": reply.reason if focus is None else focus.reason}
        for node in result.missing:
            outcome[node] = {"status": "failed", "reason": "no answer (timed out or node lost)"}
        failed = sorted(n for n, o in outcome.items() if o.get("status") != "ok")
        if failed:
            log.warning("refocus: failed or missing on %s; going on", ", ".join(failed))
        self.focus_runs.append({"reason": reason, "nodes": outcome})
        self.triggers.reset_after_focus(self._temperature())
        self.link.update_state(phase="idle")

    def _temperature(self) -> float | None:
        try:
            focuser = self.supervisor.get().focuser
        except IndisyncError:
            return None
        return focuser.temperature if focuser is not None else None


class _FocusOutcome:
    """The master's own autofocus result, written by its thread and read by refocus_all: first
    writer wins, both sides under one lock, so a late result from a run already counted as failed
    never changes what was reported."""

    def __init__(self):
        self._lock = threading.Lock()
        self._result = None
        self._error: str | None = None
        self._set = False

    def set(self, result=None, error: str | None = None) -> None:
        with self._lock:
            if not self._set:
                self._result, self._error, self._set = result, error, True

    def get(self):
        with self._lock:
            return self._result, (self._error if self._set else "no result")
