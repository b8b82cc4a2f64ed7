"""What every node does, master or slave: devices under supervision, its MQTT link, state and
events, and the `autofocus` and `abort` commands."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from ..config import Config
from ..errors import DeviceError, IndisyncError
from ..focus.interfaces import FocusProgress
from ..focus.offsets import FocusBase, default_base, offset_move
from ..protocol.clock import NodeClock
from ..protocol.node_link import NodeLink
from .supervisor import DeviceSupervisor

log = logging.getLogger(__name__)


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
        self.abort_event = threading.Event()
        # One device action at a time: an exposure, an autofocus run or a filter move.
        self.device_lock = threading.Lock()
        self.frames = 0
        # Where focus is known to be (last good autofocus, else focus.default_position); filter
        # offsets and the temperature coefficient are applied relative to it.
        self.focus_base: FocusBase | None = default_base(cfg.focus)

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        devices = self.supervisor.start()
        self.prepare(devices)
        if not self.link.start(wait=10.0):
            log.warning("MQTT broker at %s:%s not reachable yet; retrying in the background",
                        self.cfg.mqtt.host, self.cfg.mqtt.port)
        self.publish_device_state(devices, phase="idle")
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
        self.link.close()
        self.supervisor.close()

    # ---- commands --------------------------------------------------------------------------------
    def command_handlers(self) -> dict[str, Callable]:
        return {"autofocus": self.cmd_autofocus, "abort": self.cmd_abort, "sync_wait": self.cmd_sync_wait}

    def cmd_sync_wait(self, command, progress) -> dict:
        """Answer done once this node is idle (no exposure, wheel move or autofocus running): the
        barrier a master uses before it moves the mount."""
        timeout = float(command.args.get("timeout", 60.0))
        started = time.monotonic()
        if not self.device_lock.acquire(timeout=timeout):
            raise IndisyncError(f"still busy after {timeout:g} s (barrier {command.args['barrier']})")
        self.device_lock.release()
        return {"barrier": command.args["barrier"], "waited": round(time.monotonic() - started, 3)}

    def cmd_abort(self, command, progress) -> dict:
        self.abort_event.set()
        try:
            camera = self.supervisor.get().camera
            if camera is not None:
                camera.abort()
        except IndisyncError as exc:
            log.warning("abort: %s", exc)
        return {"aborted": True}

    def cmd_autofocus(self, command, progress) -> dict:
        if not self.device_lock.acquire(timeout=60):
            raise IndisyncError("busy: another exposure or autofocus did not finish within 60 s")
        try:
            self.abort_event.clear()
            result = self.autofocus(reason=command.args.get("reason"), progress=progress)
        finally:
            self.device_lock.release()
        summary = result.summary()
        if not result.ok:
            # The reply carries the failure as data: a failed focus never blocks the night.
            summary["failed"] = True
        return summary

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
            if p.phase in ("sweep", "extend", "check"):
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
                        hfr=hfr, reason=result.reason[:500] if result.reason else None)
        if result.ok:
            self.focus_base = FocusBase(result.position, filter_name, devices.focuser.temperature)
        self.link.update_state(phase="idle", focuser_position=result.position, hfr=hfr)
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

