"""What every node does, master or slave: devices under supervision, its MQTT link, state and
events, and the `autofocus`, `abort`, `sync_wait`, `solve`, `rotate`, `cool`, `warm`, `flats` and `darks`
commands (each reads its typed args and answers its result dataclass, indisync.contracts)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from ..alerts import Alarm, Alerter
from ..alerts import causes as alarms
from ..config import Config
from ..contracts import (AbortArgs, AbortResult, AutofocusArgs, AutofocusResult, CoolArgs, CoolResult, DarksResult,
                         FlatsResult, RotateResult, SolveArgs, SolveResult, SyncWaitArgs, SyncWaitResult, WarmArgs,
                         WarmResult)
from ..errors import DeviceError, IndisyncError
from ..focus.interfaces import FocusProgress
from ..focus.offsets import FocusBase, default_base, offset_move
from ..protocol.clock import NodeClock
from ..protocol.node_link import NodeLink
from .abort_gate import AbortGate
from .calibrating import LibraryHolder, run_darks, run_flats
from .cooling import CoolingMonitor, CoolingStatus
from .disk import DiskSpaceLow, check_free_space, free_gb
from .rotating import rotate_node
from ..record.grading import FrameGrader
from .supervisor import DeviceSupervisor

log = logging.getLogger(__name__)

DISK_STATE_EVERY_S = 30.0  # the state's disk_free_gb is refreshed this often between frames (and before each)


class NodeBase:
    role = "slave"
    needed_devices: tuple[str, ...] = ("camera",)

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.name = cfg.node.name
        self.supervisor = DeviceSupervisor(cfg.indi, self.needed_devices, on_change=self._on_indi_change)
        if cfg.testing.clock_skew_s:
            log.warning("testing.clock_skew_s = %+g s: this node's clock is shifted ON PURPOSE (tests only; "
                        "remove the testing: section on a real rig)", cfg.testing.clock_skew_s)
        # The command ids this node has run survive its restarts, so a redelivery never runs twice.
        executed = Path(cfg.storage.directory) / ".indisync" / f"{cfg.node.name}.commands.jsonl"
        self.link = NodeLink(cfg.mqtt, self.name, self.role, handlers=self.command_handlers(),
                             executed_path=executed, clock=NodeClock(cfg.testing.clock_skew_s))
        self.stop_event = threading.Event()
        self.abort_gate = AbortGate()  # abort, and an abort that overtakes the command it was meant for
        self.abort_event = self.abort_gate.event
        # One device action at a time: an exposure, an autofocus run or a filter move.
        self.device_lock = threading.Lock()
        self.frames = 0
        # Where focus is known to be (last good autofocus, else focus.default_position); filter
        # offsets and the temperature coefficient are applied relative to it.
        self.focus_base: FocusBase | None = default_base(cfg.focus)
        self.cooling = CoolingMonitor(lambda: self.supervisor.get().camera)
        self._temperature_watch: threading.Thread | None = None
        self.grader = FrameGrader(cfg.grading)  # this node's frames against its recent ones, per filter
        self._preview_busy = threading.Lock()  # one frame preview (HA image entity) at a time
        # Alarms to a phone (alerts.urls) and as MQTT "alarm" events, sent from the alerter's worker.
        self.alerter = Alerter(cfg.alerts, self.name, publish=self._publish_alarm)
        self._disk_checked = 0.0  # time.monotonic() of the last free-space reading in the state
        self._calib_library = LibraryHolder(cfg.storage.directory)  # opened by the first flats or darks

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.alerter.start()
        devices = self.supervisor.start()
        self.prepare(devices)
        if not self.link.start(wait=10.0):
            log.warning("MQTT broker at %s:%s not reachable yet; retrying in the background",
                        self.cfg.mqtt.host, self.cfg.mqtt.port)
        free = _gb(free_gb(self.cfg.storage.directory))
        self.publish_device_state(devices, phase="idle", disk_free_gb=free)
        self._temperature_watch = threading.Thread(target=self._watch_temperature, name="temperature", daemon=True)
        self._temperature_watch.start()
        log.info("%s %s up: INDI %s:%s, MQTT %s:%s", self.role, self.name, self.cfg.indi.host, self.cfg.indi.port,
                 self.cfg.mqtt.host, self.cfg.mqtt.port)

    def prepare(self, devices) -> None:
        """Role-specific checks once the devices are there (e.g. the slave's filter names)."""

    def run(self) -> None:
        """Serve until stopped. The master overrides this with its sequence."""
        self.stop_event.wait()

    def stop(self) -> None:
        self.stop_event.set()
        self.abort_event.set()

    def close(self) -> None:
        self.stop()
        # What is still queued (the night's summary) gets one service timeout, while the link is up.
        self.alerter.close(timeout=self.cfg.alerts.send_timeout_s + 2.0)
        self.link.close()
        self.supervisor.close()
        self._calib_library.close()

    # ---- alarms -------------------------------------------------------------------------------
    def raise_alarm(self, alarm: Alarm) -> bool:
        """Hand an alarm to the alerter: never blocks, never raises."""
        return self.alerter.raise_alarm(alarm)

    def _publish_alarm(self, alarm: Alarm) -> None:
        self.link.event("alarm", **alarm.event_payload())

    def check_disk(self) -> float | None:
        """Before each exposure: the free space of storage.directory into the state; below
        storage.min_free_gb the frame is refused (DiskSpaceLow, with the reason and the fix) and an
        alarm raised."""
        try:
            free = check_free_space(self.cfg.storage)
        except DiskSpaceLow as exc:
            self._disk_state(exc.free_gb)
            log.error("frame refused: %s", exc)
            self.raise_alarm(alarms.disk_low(self.name, exc.free_gb, exc.directory, exc.min_free_gb))
            raise
        self._disk_state(free)
        return free

    def _disk_state(self, free: float | None) -> None:
        self._disk_checked = time.monotonic()
        try:
            self.link.update_state(disk_free_gb=_gb(free))
        except Exception:  # noqa: BLE001 - the state is a report; the check itself stands
            log.exception("could not publish the free disk space")

    # ---- commands --------------------------------------------------------------------------------
    def command_handlers(self) -> dict[str, Callable]:
        return {"autofocus": self.cmd_autofocus, "abort": self.cmd_abort, "sync_wait": self.cmd_sync_wait,
                "cool": self.cmd_cool, "warm": self.cmd_warm, "solve": self.cmd_solve, "rotate": self.cmd_rotate,
                "flats": self.cmd_flats, "darks": self.cmd_darks}

    def cmd_flats(self, command, progress) -> FlatsResult:
        """Sky or panel flats of the sets asked for (indisync.node.calibrating)."""
        return run_flats(self, command, progress)

    def cmd_darks(self, command, progress) -> DarksResult:
        """Darks and bias into this node's dark library (indisync.node.calibrating)."""
        return run_darks(self, command, progress)

    def calib_library(self):
        """This node's calibration library ({storage.directory}/calib/library.db), opened on first use."""
        return self._calib_library.get()

    def cmd_rotate(self, command, progress) -> RotateResult:
        """Turn this node's rotator to the target's position angle, solving to check
        (indisync.node.rotating); a node without a rotator answers status no_rotator."""
        return rotate_node(self, command, progress)

    def cmd_solve(self, command, progress) -> SolveResult:
        """Take one frame and plate-solve it. The frame is taken under the device lock; the solve
        (bounded by acquire.solve_timeout) runs after it is released, in this command's worker."""
        from ..acquire.live import take_and_solve

        args = SolveArgs.from_wire(command.args)
        hint = (args.ra, args.dec) if args.ra is not None and args.dec is not None else None
        devices = self.supervisor.get()

        @contextlib.contextmanager
        def hold():
            if not self.device_lock.acquire(timeout=60):
                raise IndisyncError("busy: another exposure or autofocus did not finish within 60 s")
            try:
                yield
            finally:
                self.device_lock.release()

        return SolveResult.from_wire(take_and_solve(devices.camera, devices.mount, self.cfg.acquire, args.exposure,
                                                    args.binning, hint=hint, hold=hold()))

    def cmd_sync_wait(self, command, progress) -> SyncWaitResult:
        """Answer done once this node is idle (no exposure, wheel move or autofocus running): the
        barrier a master uses before it moves the mount."""
        args = SyncWaitArgs.from_wire(command.args)
        started = time.monotonic()
        if not self.device_lock.acquire(timeout=args.timeout):
            raise IndisyncError(f"still busy after {args.timeout:g} s (barrier {args.barrier})")
        self.device_lock.release()
        return SyncWaitResult(barrier=args.barrier, waited=round(time.monotonic() - started, 3))

    def cmd_abort(self, command, progress) -> AbortResult:
        AbortArgs.from_wire(command.args)  # nothing to read but the reason; checked all the same
        self.abort_gate.abort(command.sender, command.ts)
        try:
            camera = self.supervisor.get().camera
            if camera is not None:
                camera.abort()
        except IndisyncError as exc:
            log.warning("abort: %s", exc)
        return AbortResult(aborted=True)

    # ---- cooling ----------------------------------------------------------------------------------
    def cmd_cool(self, command, progress) -> CoolResult:
        """Cool to the setpoint (args, else camera.cooling) and answer once within tolerance; progress
        replies carry {temperature, setpoint}. Takes no device lock: frames may run meanwhile."""
        settings, args = self.cfg.camera.cooling, CoolArgs.from_wire(command.args)
        camera = self.supervisor.get().camera
        if camera is None or not camera.has_cooler or (settings is None and args.setpoint is None):
            why = "the camera has no cooler" if camera is None or not camera.has_cooler else "camera.cooling is null"
            log.info("cool: skipped, %s", why)
            return CoolResult(reached=True, skipped=True, reason=why,
                              temperature=None if camera is None else camera.temperature)
        setpoint = args.setpoint if args.setpoint is not None else settings.setpoint
        tolerance = args.tolerance if args.tolerance is not None else (settings.tolerance if settings else 1.0)
        timeout = args.timeout if args.timeout is not None else (settings.timeout if settings else 900.0)
        generation = self.cooling.set_setpoint(setpoint, tolerance)
        self._publish_cooling(*self.cooling.sample())
        start_temperature = self.cooling.temperature
        log.info("cooling to %g C (now %s C, tolerance %g, timeout %g s)", setpoint, start_temperature, tolerance, timeout)

        def report(status: CoolingStatus) -> None:
            fraction = None
            if start_temperature is not None and status.temperature is not None and start_temperature != setpoint:
                fraction = min(1.0, max(0.0, (start_temperature - status.temperature) / (start_temperature - setpoint)))
            progress(fraction, temperature=status.temperature, setpoint=setpoint, eta_s=status.eta_s)

        status = self.cooling.wait(generation, timeout, self.stop_event, report)
        log.info("cooling: %g C reached (sensor %s C)", setpoint, status.temperature)
        return CoolResult(reached=True, setpoint=setpoint, temperature=status.temperature)

    def cmd_warm(self, command, progress) -> WarmResult:
        """Set the setpoint to ``to`` (else camera.cooling.warm_to) and answer at once."""
        settings = self.cfg.camera.cooling
        camera = self.supervisor.get().camera
        target = WarmArgs.from_wire(command.args).to
        if target is None and settings is not None:
            target = settings.warm_to
        if camera is None or not camera.has_cooler or target is None:
            return WarmResult(skipped=True, temperature=None if camera is None else camera.temperature)
        self.cooling.set_setpoint(target, settings.tolerance if settings else 1.0)
        temperature, status = self.cooling.sample()
        self._publish_cooling(temperature, status)
        log.info("warming to %g C (sensor %s C)", target, temperature)
        return WarmResult(setpoint=target, temperature=temperature)

    def _watch_temperature(self) -> None:
        """Keep the state's temperature and cooling fresh (about once a second); never dies."""
        period = min(1.0, self.cfg.mqtt.heartbeat)
        while not self.stop_event.wait(period):
            try:
                self._publish_cooling(*self.cooling.sample())
                if time.monotonic() - self._disk_checked >= DISK_STATE_EVERY_S:  # between frames too
                    self._disk_state(free_gb(self.cfg.storage.directory))
            except Exception:  # noqa: BLE001 - a bad reading must not end the watch
                log.exception("temperature watch")

    def _publish_cooling(self, temperature: float | None, status: CoolingStatus | None) -> None:
        self.link.update_state(temperature=None if temperature is None else round(temperature, 2),
                               cooling=None if status is None else status.as_state())

    def cmd_autofocus(self, command, progress) -> AutofocusResult:
        args = AutofocusArgs.from_wire(command.args)
        if not self.device_lock.acquire(timeout=60):
            raise IndisyncError("busy: another exposure or autofocus did not finish within 60 s")
        try:
            self.abort_gate.begin(command.sender, command.ts, "autofocus")
            result = self.autofocus(reason=args.reason, progress=progress)
        finally:
            self.device_lock.release()
        # The reply carries a failure as data: a failed focus never blocks the night.
        return AutofocusResult(**result.summary(), failed=not result.ok)

    def publish_preview(self, path) -> None:
        """A small JPEG of a saved frame, retained for Home Assistant, made on a thread of its own
        after the frame's reply; skipped while the previous one is still being made."""
        if not self._preview_busy.acquire(blocking=False):
            return

        def work() -> None:
            try:
                from ..record.preview import jpeg_preview

                self.link.publish_image("frame", jpeg_preview(path))
            except Exception as exc:  # noqa: BLE001 - a preview must never disturb the night
                log.warning("frame preview of %s not published: %s", path, exc)
            finally:
                self._preview_busy.release()

        threading.Thread(target=work, name="frame-preview", daemon=True).start()

    def grade_frame(self, filter_name, hfr, stars):
        """(grade, guiding RMS) of a measured frame; the master adds its guiding RMS."""
        return self.grader.grade(filter_name, hfr, stars), None

    # ---- autofocus with events -------------------------------------------------------------------
    def autofocus(self, reason: str | None = None, progress: Callable | None = None):
        """One autofocus run on this node's devices, relayed as autofocus_* events. The caller
        holds ``device_lock``."""
        devices = self.supervisor.get()
        run_id = f"af-{self.name}-{uuid.uuid4().hex[:8]}"
        start_position = devices.focuser.position if devices.focuser is not None else None
        filter_name = devices.filter_wheel.current if devices.filter_wheel is not None else None
        self.link.update_state(phase="focusing", exposure=None)
        self.link.event("autofocus_started", run_id=run_id, filter=filter_name, position=start_position,
                        reason=(reason or "requested")[:500])

        def on_point(p: FocusProgress) -> None:
            if p.phase in ("sweep", "extend", "search", "check"):
                hfr = p.hfr if p.hfr is not None and p.hfr == p.hfr else None
                self.link.event("autofocus_point", run_id=run_id, position=p.position, hfr=hfr, stars=p.stars)
                self.link.update_state(focuser_position=p.position)
                if progress is not None:
                    progress(position=p.position, hfr=hfr, stars=p.stars, frame=p.frame)

        from .focusing import autofocus_with_devices  # numpy/scipy/photutils: loaded on the first run

        try:
            result = autofocus_with_devices(devices, self.cfg, on_point, self.abort_event.is_set,
                                            metadata={"node": self.name, "run_id": run_id})
        except DeviceError as exc:
            self.link.event("autofocus_done", run_id=run_id, status="failed", position=start_position,
                            reason=str(exc)[:500])
            self.link.update_state(phase="error", error=str(exc)[:500])
            raise
        hfr = result.hfr if result.hfr is not None and result.hfr == result.hfr else None
        self.link.event("autofocus_done", run_id=run_id, status=result.status, position=result.position,
                        hfr=hfr, reason=result.reason[:500] if result.reason else None,
                        temperature=_temperature_field(devices.focuser))
        if result.ok:
            self.focus_base = FocusBase(result.position, filter_name, devices.focuser.temperature)
        self.link.update_state(phase="idle", focuser_position=result.position, hfr=hfr)
        _publish_vcurve(self.link, result.plot)
        log.info("autofocus %s: %s at %s (HFR %s, %d frames)%s", run_id, result.status, result.position,
                 hfr, result.frames, f": {result.reason}" if result.reason else "")
        return result

    def focus_for(self, devices, filter_name: str | None) -> None:
        """Move the focuser by the filter offset / temperature term for ``filter_name``, if any."""
        focuser = devices.focuser
        if focuser is None or self.focus_base is None:
            return
        target = offset_move(focuser.position, self.focus_base, filter_name, focuser.temperature, self.cfg.focus)
        if target is None:
            return
        log.info("focus offset: %s -> %s for %s", focuser.position, target, filter_name)
        focuser.move_to(target)
        self.link.update_state(focuser_position=target)

    # ---- state -----------------------------------------------------------------------------------
    def publish_device_state(self, devices, **fields) -> None:
        if devices.filter_wheel is not None:
            fields.setdefault("filter", devices.filter_wheel.current)
            fields.setdefault("wheel", wheel_names(devices.filter_wheel))  # the season's store notes it
        if devices.focuser is not None:
            fields.setdefault("focuser_position", devices.focuser.position)
        fields.setdefault("frames", self.frames)
        self.link.update_state(**fields)

    def _on_indi_change(self, ok: bool, why: str | None) -> None:
        try:
            if ok:
                self.link.update_state(phase="idle", error=None)
            else:
                self.link.update_state(phase="error", error=f"INDI: {why}"[:500], exposure=None)
                self.link.error(f"lost indiserver at {self.cfg.indi.host}:{self.cfg.indi.port}: {why}")
        except Exception:  # noqa: BLE001 - reporting must not break the supervisor
            log.exception("could not report the INDI connection change")


def wheel_names(wheel) -> list[str] | None:
    """The wheel's FILTER_NAME names in slot order, as the state's ``wheel`` field (None: unreadable)."""
    try:
        return [str(name)[:64] for name in wheel.names][:64]
    except Exception as exc:  # noqa: BLE001 - a report, never a reason to fail the start
        log.warning("could not read the wheel's filter names: %s", exc)
        return None


def _gb(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, value), 2)


def _publish_vcurve(link, plot: str | None) -> None:
    """The run's V-curve PNG, retained, for Home Assistant's image entity (never fails the run)."""
    if not plot:
        return
    try:
        link.publish_image("vcurve", Path(plot).read_bytes())
    except (OSError, IndisyncError) as exc:
        log.warning("V-curve %s not published: %s", plot, exc)


def _temperature_field(focuser) -> float | None:
    value = focuser.temperature if focuser is not None else None
    return round(float(value), 3) if value is not None and -100 <= value <= 100 else None


def run_node(node: NodeBase) -> int:
    """Start a node, run it until it finishes or is signalled, close it cleanly."""
    import signal

    def on_signal(signum, frame):
        log.info("signal %s: stopping", signum)
        node.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        node.start()
        node.run()
    finally:
        node.close()
    return 0

