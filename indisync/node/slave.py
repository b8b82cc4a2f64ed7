"""The slave role: expose whenever the master says so, through the next filter of its rotation.

The rotation (the checked filters of ``slave.filters``, looping) is kept on disk, so it goes on
across refocus cycles and restarts. After each frame the wheel moves to the next filter at once,
so the master's next start is not held up by the wheel.

In the season (the master has a scheduler: section) each expose command carries this node's plan
lines that still need frames for the target (``ExposeArgs.plan``): the slave rotates through those
filters only, with each line's exposure and binning (``PlanRotation``, kept on disk beside the
checked rotation); an empty plan means nothing to take: it answers at once with no frame.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from ..contracts import ExposeArgs, ExposeResult
from ..errors import ExposureAborted, IndisyncError
from ..sequence.loose import fits as fits_in_time
from ..sequence.loose import plan_loose
from ..sequence.rotation import FilterRotation, PlanRotation, exposure_for, validate_checked_filters
from ..sequence.state_store import StateStore
from ..protocol.messages import now_iso
from .base import NodeBase
from .imaging import FrameRequest, take_frame
from .measuring import FrameMeasurer, MeasureJob, MeasureResult

log = logging.getLogger(__name__)


def state_path(cfg) -> Path:
    return Path(cfg.storage.directory) / ".indisync" / f"{cfg.node.name}.state.json"


class SlaveNode(NodeBase):
    role = "slave"
    needed_devices = ("camera",)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.store = StateStore(state_path(cfg))
        self.rotation: FilterRotation | None = None
        self.plan_rotation = PlanRotation(self.store)  # the season's (ExposeArgs.plan)
        # HFR after the reply, in a niced worker process: the master's next start never waits for
        # star detection, and the next command never competes with it for the CPU (issue 18).
        self.measurer = FrameMeasurer(cfg, self._on_measured)

    def start(self) -> None:
        self.measurer.start()  # the worker process is up (and niced) before the first frame
        super().start()

    def close(self) -> None:
        self.stop()
        self.measurer.close(timeout=30.0)  # publish what is still being measured while the link is up
        super().close()

    def prepare(self, devices) -> None:
        if devices.filter_wheel is None:
            if self.cfg.slave.filters:
                log.warning("no filter wheel: slave.filters %s ignored, frames are unfiltered", self.cfg.slave.filters)
            return
        # A checked name the wheel lacks stops start-up here, listing the wheel's names.
        checked = validate_checked_filters(self.cfg.slave.filters, devices.filter_wheel.names)
        self.rotation = FilterRotation(checked, self.store)
        devices.filter_wheel.select(self.rotation.peek())
        log.info("rotation %s, next %s", checked, self.rotation.peek())

    def command_handlers(self):
        return {**super().command_handlers(), "expose": self.cmd_expose}

    # ---- expose ---------------------------------------------------------------------------------
    def cmd_expose(self, command, progress) -> ExposeResult:
        args = ExposeArgs.from_wire(command.args)
        if not self.device_lock.acquire(timeout=30):
            raise IndisyncError("busy: the previous exposure, wheel move or autofocus has not finished")
        try:
            self.abort_gate.begin(command.sender, command.ts, "exposure")
            devices = self.supervisor.get()
            master_duration = args.duration
            loose = args.sync == "loose"
            deadline = time.monotonic() + master_duration
            if args.plan is not None:
                saved = self._expose_plan(devices, args, deadline)
                return _result(saved)
            if loose and self.rotation is not None:
                plan = plan_loose(master_duration, self.rotation.upcoming(),
                                  lambda f: exposure_for(self.cfg.slave, f), self.cfg.slave.frame_overhead)
                count = plan.count
                if count == 0:
                    self._refuse_loose_misfit(master_duration)
            else:
                count = 1
            saved = []
            for n in range(count):
                filter_name = self.rotation.peek() if self.rotation is not None else None
                duration = exposure_for(self.cfg.slave, filter_name) if filter_name else self._unfiltered_exposure()
                if not loose and duration > master_duration + 1e-6:
                    raise IndisyncError(
                        f"strict sync: this slave's {filter_name} exposure ({duration:g} s) is longer than the "
                        f"master's ({master_duration:g} s); shorten slave.exposure or use master.sync: loose"
                    )
                if loose and n > 0 and not fits_in_time(deadline - time.monotonic(), duration,
                                                        self.cfg.slave.frame_overhead):
                    break
                if self.abort_event.is_set():
                    break
                saved.append(self._one_frame(devices, args, filter_name, duration, n))
        except BaseException:
            self.link.update_state(phase="idle", exposure=None)
            raise
        finally:
            self.device_lock.release()
        return _result(saved)

    def _expose_plan(self, devices, args: ExposeArgs, deadline: float) -> list:
        """The season's frames for one master exposure: through the plan's filters only (strict: one
        frame, the next line whose exposure fits the master's; loose: as many as fit)."""
        lines: dict = {}
        for filter_name, seconds, binning in args.plan:
            lines.setdefault(filter_name, (float(seconds), int(binning)))
        allowed = list(lines)
        if not allowed:
            log.info("exposure %s: nothing of this node's plan needs a frame now: idle", args.exposure_id)
            return []
        loose, master_duration = args.sync == "loose", args.duration
        fitting = [f for f in allowed if lines[f][0] <= master_duration + 1e-6]
        if loose:
            count = plan_loose(master_duration, self.plan_rotation.upcoming(allowed), lambda f: lines[f][0],
                               self.cfg.slave.frame_overhead).count
        else:
            count = 1
        if not fitting or count == 0:
            listed = ", ".join(f"{f or 'unfiltered'} {lines[f][0]:g} s" for f in allowed)
            raise IndisyncError(
                f"the plan's exposures ({listed}) are "
                f"all longer than the master's {master_duration:g} s exposure, so no frame was taken; give this "
                "node's plan lines exposures no longer than the master's (indisync targets), or use master.sync: loose")
        saved = []
        for n in range(count):
            choice = allowed if loose else fitting
            filter_name = self.plan_rotation.peek(choice)
            seconds, binning = lines[filter_name]
            if loose and n > 0 and not fits_in_time(deadline - time.monotonic(), seconds,
                                                    self.cfg.slave.frame_overhead):
                break
            if self.abort_event.is_set():
                break
            saved.append(self._one_frame(devices, args, filter_name, seconds, n, binning=binning, plan=choice))
        return saved

    def _refuse_loose_misfit(self, master_duration: float) -> None:
        """Loose sync, and the rotation's next filter does not fit in this master exposure: nothing
        is taken and the rotation stays on that filter (skipping it would starve it). Say so loudly,
        as a failed reply, a log line and an MQTT error, instead of answering "done" with no frame."""
        name = self.rotation.peek()
        seconds = exposure_for(self.cfg.slave, name)
        overhead = self.cfg.slave.frame_overhead
        message = (
            f"loose sync: the next filter {name} ({seconds:g} s + {overhead:g} s overhead) does not fit in the "
            f"master's {master_duration:g} s exposure, so no frame was taken and the rotation waits on {name}. "
            f"Shorten slave.exposure for {name} or slave.frame_overhead, or lengthen the master's exposures"
        )
        log.error("%s", message)
        try:
            self.link.error(message[:1000])
        except Exception:  # noqa: BLE001 - the failed reply below still carries the reason
            log.exception("could not publish the loose-sync error")
        raise IndisyncError(message)

    def _unfiltered_exposure(self) -> float:
        exposure = self.cfg.slave.exposure
        return float(exposure) if not isinstance(exposure, dict) else float(min(exposure.values()))

    def _one_frame(self, devices, args: ExposeArgs, filter_name, duration, n, binning: int | None = None,
                   plan: list | None = None):
        """One frame; ``plan``: the season's filters this frame was chosen among (PlanRotation),
        None: the checked rotation."""
        exposure_id = args.exposure_id or f"{args.batch or 0}-{self.frames + 1}"
        if n:
            exposure_id = f"{exposure_id}.{n + 1}"
        request = FrameRequest(
            duration=duration, filter_name=filter_name, frame_type=args.frame_type,
            binning=args.binning if binning is None else binning, target=args.target, suffix=filter_name,
            batch=args.batch, seq_index=self.frames + 1,
            exposure_id=_numeric_id(args.exposure_id),
            # the master's scheduled start; loose mode's later frames start when the previous one ends
            start_at=self._local_start(args.start_at) if n == 0 else None,
            clock_offset_s=self.link.clock_offset,
        )

        def on_start(req: FrameRequest) -> None:
            self.measurer.exposure_starting(req.start_at)  # the last frame is measured while this one exposes
            start = now_iso(datetime.fromtimestamp(max(time.time(), req.start_at or 0), timezone.utc))
            exposure = {"id": exposure_id, "filter": filter_name, "start": start, "duration": duration}
            self.link.update_state(phase="exposing", exposure=exposure, filter=filter_name)
            self.link.event("exposure_started", exposure_id=exposure_id, filter=filter_name, duration=duration,
                            frame_type=req.frame_type, start=start)

        # The wheel starts for the next filter as soon as the image is in, while this frame is
        # measured and written; the reply waits for both, so the master's next start (which
        # follows our reply in strict mode) never finds the wheel moving.
        following = self.plan_rotation.after(filter_name, plan) if plan is not None else None
        premove = threading.Thread(target=self._move_to_next_filter, args=(devices, filter_name, following),
                                   daemon=True)
        try:
            record = take_frame(devices, self.cfg, request, on_start, on_exposed=premove.start,
                                should_abort=self.abort_event.is_set, measure_inline=False,
                                check_space=self.check_disk)
        except ExposureAborted as exc:
            # Nothing was written and the rotation stays: the next frame uses this filter again.
            self.link.event("exposure_done", exposure_id=exposure_id, status="aborted", filter=filter_name,
                            reason=str(exc)[:500])
            raise
        except IndisyncError as exc:
            self.link.event("exposure_done", exposure_id=exposure_id, status="failed", filter=filter_name,
                            reason=str(exc)[:500])
            raise
        finally:
            if premove.is_alive() or premove.ident is not None:
                premove.join(self.cfg.indi.move_timeout + 5)
        if plan is not None:
            self.plan_rotation.advance(filter_name, plan)  # only after the frame is safely on disk
        elif self.rotation is not None:
            self.rotation.advance()  # only after the frame is safely on disk
        self.frames += 1
        self.link.event("exposure_done", exposure_id=exposure_id, status="ok", filter=filter_name,
                        file=record.path.name[:64] if len(record.path.name) <= 64 else None, **record.event_fields())
        self.link.update_state(phase="idle", exposure=None, frames=self.frames)
        if record.image is not None:  # measured after the reply; hfr/stars follow in frame_measured and the state
            record.image = None  # the worker reads the frame from its file: the pixels go now
            self.measurer.submit(MeasureJob(None, exposure_id, record.path.name, filter_name, path=str(record.path)))
        self.publish_preview(record.path)
        return record

    def _on_measured(self, result: MeasureResult) -> None:
        job = result.job
        # Graded here, where the measurement lands: the grade goes with frame_measured into the night
        # log; the slave's FITS header, written before the measurement, is never rewritten for it.
        # A frame the worker could not measure is not graded: no figures are not bad figures.
        grade = self.grade_frame(job.filter_name, result.hfr, result.stars)[0] if result.error is None else None
        graded = {} if grade is None else {"grade": grade.status, "grade_reason": grade.reason[:500]}
        self.link.event("frame_measured", exposure_id=job.exposure_id, filter=job.filter_name,
                        file=job.file if len(job.file) <= 64 else None, hfr=result.hfr, stars=result.stars,
                        seconds=round(result.seconds, 3), when="before_reply" if result.inline else "after_reply",
                        **graded, **({} if result.error is None else {"error": result.error[:500]}))
        self.link.update_state(hfr=result.hfr, stars=result.stars)
        if result.error is not None:  # the worker died or hung on it: someone should know
            self.link.error(f"HFR of {job.file} {result.error}"[:1000])

    def _local_start(self, start_at: str | None) -> float | None:
        """The master's scheduled start (a time on the master's clock) as a ``time.time()`` reading on
        this machine: a slave whose clock runs ahead of the master's by the measured offset opens its
        shutter that much later by its own clock, at the same true moment."""
        at = _epoch(start_at)
        if at is None:
            return None
        offset = self.link.clock_offset or 0.0
        skew = self.link.clock.time() - time.time()  # testing.clock_skew_s only; 0 on a real rig
        return at + offset - skew

    def _move_to_next_filter(self, devices, current: str | None, following: str | None = None) -> None:
        """Move the wheel to the filter after ``current`` in the rotation (not yet advanced), or to
        ``following`` (the season's plan rotation), and the focuser to that filter's offset."""
        target = current
        if following is not None and devices.filter_wheel is not None:
            target = following
        elif self.rotation is not None and devices.filter_wheel is not None:
            upcoming = self.rotation.upcoming()
            next(upcoming)  # the filter just exposed
            target = next(upcoming)
        try:
            if target != current:
                devices.filter_wheel.select(target)
                self.link.event("filter_changed", filter=target, previous=current)
                self.link.update_state(filter=target)
            self.focus_for(devices, target)  # filter offset, or a temperature change since the last frame
        except Exception as exc:  # noqa: BLE001 - the next exposure selects its filter again anyway
            log.warning("could not move the wheel to %s: %s", target, exc)


def _result(saved: list) -> ExposeResult:
    return ExposeResult(files=[r.path.name for r in saved], filters=[r.filter_name for r in saved],
                        starts=[r.start for r in saved], durations=[r.duration for r in saved])


def _epoch(iso: str | None) -> float | None:
    """A wire timestamp ('2026-12-03T01:02:03.456Z') as time.time() seconds."""
    if iso is None:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _numeric_id(value) -> int | None:
    """The master's exposure ids look like 'b2-3' or '17'; FITS EXPOSID keeps the running number."""
    if value is None:
        return None
    digits = "".join(ch if ch.isdigit() else " " for ch in str(value)).split()
    return int(digits[-1]) if digits else None
