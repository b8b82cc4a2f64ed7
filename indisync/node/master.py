"""The master role: runs the imaging sequence, starts every live slave's exposure with its own,
and at each refocus trigger has every node autofocus at once before going on.

Progress (batch, next frame) is on disk after every frame, so a restarted master resumes at the
next frame of its batch. A slave that dies is dropped from the registry and no longer waited for;
one that comes back is taken up again at the next exposure. A failed or missing autofocus is
reported and never blocks the night.
"""

from __future__ import annotations

import logging
import threading

from ..errors import IndisyncError
from ..guiding.guider import Guider
from ..protocol.registry import Barrier
from ..sequence.plan import PlannedFrame, expand_batch
from ..sequence.rotation import validate_checked_filters
from ..sequence.state_store import StateStore, load_master_progress, save_master_progress
from ..sequence.triggers import RefocusTriggers
from ..protocol.messages import now_iso
from .base import NodeBase
from .guiding import MasterGuiding
from .imaging import FrameRequest, take_frame
from .slave import state_path

log = logging.getLogger(__name__)

SLAVE_MARGIN_S = 30.0  # beyond the exposure, for a slave's download, HFR and file write
RETRY_S = 5.0  # wait before trying a failed frame again (the device supervisor may be reconnecting)
FRAME_ATTEMPTS = 3  # a frame that failed this often is given up, with an error, so the night goes on


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
        self.night_runner = None  # the night's executor (node/night_runner.py), once run() has started it
        self.plan: list[PlannedFrame] = expand_batch(cfg.master.sequence)
        self.triggers = RefocusTriggers(cfg.master.refocus)
        self.registry = None
        self.client = None
        self.focus_runs: list[dict] = []

    def prepare(self, devices) -> None:
        wanted = sorted({f.filter for f in self.plan if f.filter})
        if wanted and devices.filter_wheel is None:
            raise IndisyncError(f"the sequence uses filters {wanted} but this node has no filter wheel "
                                "(indi.filter_wheel); remove the slot filters or configure the wheel")
        if wanted:
            validate_checked_filters(wanted, devices.filter_wheel.names)
        if self.cfg.guider is None:
            log.info("no guider: section in the config: guiding and dithering are skipped")
        else:
            guider = Guider(devices.guide_camera, devices.mount, self.cfg.guider)
            self.guiding = MasterGuiding(guider, self.cfg.master, self.link, self.stop_event)

    def start(self) -> None:
        super().start()
        self.registry = self.link.registry()
        self.registry.start_sweeper()
        self.client = self.link.command_client()

    def close(self) -> None:
        if self.guiding is not None:
            self.guiding.stop()
        if self.client is not None:
            self.client.close()
        if self.registry is not None:
            self.registry.stop()
        super().close()

    # ---- the night --------------------------------------------------------------------------
    def command_handlers(self):
        return {**super().command_handlers(), "stop": self.cmd_stop}

    def cmd_stop(self, command, progress) -> dict:
        """`indisync stop`: end the night as at dawn (finish or, with abort, abort the frame; park; warm)."""
        runner = getattr(self, "night_runner", None)
        if runner is None:
            raise IndisyncError("the night has not started yet; try again in a few seconds")
        abort = bool(command.args.get("abort"))
        runner.stop_night(abort)
        return {"stopping": True, "abort": abort}

    def run(self) -> None:
        """The night, as the state machine in indisync.night says; see indisync.node.night_runner."""
        from .night_runner import NightRunner

        # Retained states arrive right after subscribing; give live slaves a heartbeat to show up.
        self.stop_event.wait(self.cfg.mqtt.heartbeat * 1.5)
        if self.progress.align_with(self.plan):
            log.warning("the sequence changed since the last run: batch %d starts again", self.progress.batch)
        save_master_progress(self.store, self.progress)
        self.night_runner = NightRunner(self)
        self.night_runner.run()
        self.link.update_state(phase="idle", exposure=None)
        log.info("sequence finished: %d frames, batch %d", self.frames, self.progress.batch)

    def synced_exposure(self, frame: PlannedFrame):
        devices = self.supervisor.get()
        exposure_id = str(self.progress.new_exposure_id())
        save_master_progress(self.store, self.progress)
        slaves = self.registry.live("slave")
        args = {
            "duration": frame.exposure, "frame_type": frame.type, "binning": frame.binning,
            "target": self.cfg.master.target, "batch": self.progress.batch, "exposure_id": exposure_id,
            "sync": self.cfg.master.sync,
        }
        barrier = Barrier(slaves, self.registry)
        request = FrameRequest(
            duration=frame.exposure, filter_name=frame.filter, frame_type=frame.type, binning=frame.binning,
            target=self.cfg.master.target, suffix=frame.suffix or frame.filter, batch=self.progress.batch,
            seq_index=frame.index + 1, exposure_id=int(exposure_id),
        )
        pendings = []

        def on_start(req: FrameRequest) -> None:
            # The wheel is in place: command the slaves now, then open our own shutter at once.
            for node in barrier.expected:
                pending = self.client.send(node, "expose", args)
                pending.add_done_callback(lambda p: barrier.arrive(p.node, p.last))
                pendings.append(pending)
            start = now_iso()
            self.link.update_state(phase="exposing", filter=req.filter_name, exposure={
                "id": exposure_id, "filter": req.filter_name, "start": start, "duration": req.duration})
            self.link.event("exposure_started", exposure_id=exposure_id, filter=req.filter_name,
                            duration=req.duration, frame_type=req.frame_type, start=start)

        record = None
        with self.device_lock:
            try:
                if frame.filter and devices.filter_wheel is not None:
                    devices.filter_wheel.select(frame.filter)
                self.focus_for(devices, frame.filter)  # before the slaves are told to start
                record = take_frame(devices, self.cfg, request, on_start)
                self.frames += 1
                self.link.event("exposure_done", exposure_id=exposure_id, status="ok", filter=record.filter_name,
                                file=record.path.name if len(record.path.name) <= 64 else None)
                self.link.update_state(phase="waiting" if slaves else "idle", exposure=None, frames=self.frames,
                                       hfr=record.hfr, stars=record.stars)
            except IndisyncError as exc:
                log.error("master exposure %s failed: %s", exposure_id, exc)
                self.link.event("exposure_done", exposure_id=exposure_id, status="failed",
                                filter=frame.filter, reason=str(exc)[:500])
                self.link.update_state(phase="idle", exposure=None)
        if slaves:
            result = barrier.wait(frame.exposure + SLAVE_MARGIN_S)
            for pending in pendings:
                self.client.forget(pending)
            failed = {n: (r or {}).get("reason") for n, r in result.answered.items() if (r or {}).get("status") != "done"}
            if result.missing or failed:
                log.warning("exposure %s: no frame from %s%s", exposure_id, result.missing or "",
                            f"; failed: {failed}" if failed else "")
            self.link.update_state(phase="idle")
        return record

    def refocus_all(self, reason: str) -> None:
        """Every node autofocuses at once; wait for all (bounded), report who failed, go on."""
        log.info("refocus (%s)", reason)
        if self.guiding is not None:
            self.guiding.stop()  # as in MaxIm: no guiding while the focus moves the stars
        slaves = self.registry.live("slave")
        barrier = Barrier(slaves, self.registry)
        pendings = []
        for node in barrier.expected:
            pending = self.client.send(node, "autofocus", {"reason": reason[:500]})
            pending.add_done_callback(lambda p: barrier.arrive(p.node, p.last))
            pendings.append(pending)
        own: dict = {}

        def own_focus() -> None:
            try:
                with self.device_lock:
                    self.abort_event.clear()
                    own["result"] = self.autofocus(reason=reason)
            except Exception as exc:  # noqa: BLE001 - reported below; the night goes on
                own["error"] = str(exc)

        thread = threading.Thread(target=own_focus, name="master-autofocus", daemon=True)
        thread.start()
        result = barrier.wait(self.cfg.focus.timeout + SLAVE_MARGIN_S)
        thread.join(self.cfg.focus.timeout + SLAVE_MARGIN_S)
        for pending in pendings:
            self.client.forget(pending)
        outcome = {self.name: own["result"].summary() if "result" in own else {"status": "failed", "reason": own.get("error")}}
        for node, reply in result.answered.items():
            reply = reply or {}
            body = reply.get("result") or {}
            ok = reply.get("status") == "done" and not body.get("failed")
            outcome[node] = {"status": "ok" if ok else "failed", "position": body.get("position"),
                             "reason": body.get("reason") or reply.get("reason")}
        for node in result.missing:
            outcome[node] = {"status": "failed", "reason": "no answer (timed out or node lost)"}
        failed = sorted(n for n, o in outcome.items() if o.get("status") != "ok")
        if failed:
            log.warning("refocus: failed or missing on %s; going on", ", ".join(failed))
        self.focus_runs.append({"reason": reason, "nodes": outcome})
        self.triggers.reset_after_focus(self._temperature())
        self.link.update_state(phase="idle")
        if self.guiding is not None and not self.stop_event.is_set():
            self.guiding.start()  # a fresh guide star: focus may have shifted the field

    def _temperature(self) -> float | None:
        try:
            focuser = self.supervisor.get().focuser
        except IndisyncError:
            return None
        return focuser.temperature if focuser is not None else None
