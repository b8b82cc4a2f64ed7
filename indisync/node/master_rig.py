"""The master's ``Rig`` (indisync.night.rig): its devices, its own camera as a local participant and
every live slave as a remote one (typed commands over MQTT, indisync.contracts), its synchronised
frames and sequence, its guider, store and link. Wiring only: the night sees these interfaces,
never the MasterNode."""

from __future__ import annotations

import logging
import threading
import uuid

from ..contracts import AbortArgs, CoolArgs, DarksArgs, FlatsArgs, RotateArgs, SolveArgs, WarmArgs, parse_reply
from ..errors import IndisyncError
from ..night.rig import Outcome, Rig
from ..protocol import messages
from ..protocol.commands import Command
from ..sequence.state_store import save_master_progress

log = logging.getLogger(__name__)

LIVENESS_SLICE_S = 1.0  # how often a wait for a slave's answer looks whether the slave is still alive


def _wire(result) -> dict:
    if result is None:
        return {}
    return result.to_wire() if hasattr(result, "to_wire") else dict(result)


class LocalParticipant:
    """The master's own camera, answered in this process."""

    local = True

    def __init__(self, master):
        self.master = master
        self.name = master.name

    def _run(self, handler, args) -> Outcome:
        command = Command(id=uuid.uuid4().hex[:16], name=args.command, sender="night", args=args.to_wire(),
                          ts=messages.now_iso())
        return Outcome(True, _wire(handler(command, lambda *a, **k: None)))

    def cool(self, timeout: float) -> Outcome:
        return self._run(self.master.cmd_cool, CoolArgs())

    def warm(self, timeout: float) -> Outcome:
        return self._run(self.master.cmd_warm, WarmArgs())

    def abort(self, reason: str) -> None:
        self.master.abort_event.set()
        try:
            camera = self.master.supervisor.get().camera
            if camera is not None:
                camera.abort()
        except IndisyncError as exc:
            log.warning("abort: %s", exc)

    def solve(self, hint: dict, timeout: float) -> Outcome:
        return Outcome(False, reason="the master's own field comes from its centring")

    def rotate(self, pa: float, hint: dict, timeout: float, cancel=None) -> Outcome:
        """Its own rotator, in this thread (bounded by the node's own settings); ``cancel`` set
        meanwhile aborts it as the master's abort would."""
        return self._watched(self.master.cmd_rotate, RotateArgs(pa=pa, **hint), cancel)

    def flats(self, args: FlatsArgs, timeout: float, cancel=None) -> Outcome:
        """Its own flats, in this thread (bounded by ``args.timeout``, else its flats.timeout);
        ``cancel`` set meanwhile aborts them (the frame under way too): the result says stopped."""
        return self._failed_as_outcome(lambda: self._watched(self.master.cmd_flats, args, cancel, camera=True),
                                       "flats")

    def darks(self, args: DarksArgs, timeout: float, cancel=None) -> Outcome:
        """Its own darks, in this thread, as ``flats``."""
        return self._failed_as_outcome(lambda: self._watched(self.master.cmd_darks, args, cancel, camera=True),
                                       "darks")

    @staticmethod
    def _failed_as_outcome(call, what: str) -> Outcome:
        try:
            return call()
        except IndisyncError as exc:  # the lock busy, an abort that came first: a failed reply, as a slave's
            return Outcome(False, reason=f"{what} failed: {exc}"[:500])

    def _watched(self, handler, args, cancel, camera: bool = False) -> Outcome:
        """``handler`` in this thread; while it runs, ``cancel`` set raises the master's abort flag
        (again each time: the command clears it as it begins) and, with ``camera``, aborts the
        exposure under way once."""
        if cancel is None:
            return self._run(handler, args)
        done = threading.Event()

        def watch() -> None:
            told = False
            while not done.wait(0.2):
                if cancel.is_set():
                    self.master.abort_event.set()
                    if camera and not told:
                        told = True
                        self.abort(f"{args.command} cancelled")

        watcher = threading.Thread(target=watch, name=f"{args.command}-cancel", daemon=True)
        watcher.start()
        try:
            return self._run(handler, args)
        finally:
            done.set()


class RemoteParticipant:
    """A live slave, over MQTT: each call sends the typed command and reads the reply through its
    result type; a slave that dies meanwhile stops being waited for."""

    local = False

    def __init__(self, client, registry, node: str):
        self.client, self.registry, self.name = client, registry, node

    def _call(self, args, timeout: float) -> Outcome:
        pending = self.client.send(self.name, args.command, args.to_wire())
        try:
            waited = 0.0
            while not pending.finished.wait(min(LIVENESS_SLICE_S, max(0.0, timeout - waited))):
                waited += LIVENESS_SLICE_S
                if waited >= timeout or not self.registry.is_alive(self.name):
                    why = "node lost" if not self.registry.is_alive(self.name) else f"within {timeout:g} s"
                    return Outcome(False, reason=f"no {args.command} answer ({why})", answered=False)
            reply = parse_reply(args.command, pending.last)
            return Outcome(reply.ok, _wire(reply.result), reply.reason)
        finally:
            self.client.forget(pending)

    def cool(self, timeout: float) -> Outcome:
        return self._call(CoolArgs(), timeout)

    def warm(self, timeout: float) -> Outcome:
        return self._call(WarmArgs(), timeout)

    def abort(self, reason: str) -> None:
        pending = self.client.send(self.name, "abort", AbortArgs(reason=reason[:500]).to_wire())
        pending.add_done_callback(self.client.forget)

    def solve(self, hint: dict, timeout: float) -> Outcome:
        return self._call(SolveArgs(**hint), timeout)

    def rotate(self, pa: float, hint: dict, timeout: float, cancel=None) -> Outcome:
        """The slave's `rotate` command; ``cancel`` set meanwhile sends it an `abort` (its rotator
        stops, the answer says cancelled), once."""
        return self._watched(RotateArgs(pa=pa, **hint), timeout, cancel, "the night left centering: rotation cancelled")

    def flats(self, args: FlatsArgs, timeout: float, cancel=None) -> Outcome:
        """The slave's `flats` command; ``cancel`` set meanwhile sends it an `abort`, once (its answer
        then says stopped, with the frames kept so far)."""
        return self._watched(args, timeout, cancel, "flats cancelled")

    def darks(self, args: DarksArgs, timeout: float, cancel=None) -> Outcome:
        return self._watched(args, timeout, cancel, "darks cancelled")

    def _watched(self, args, timeout: float, cancel, why: str) -> Outcome:
        if cancel is None:
            return self._call(args, timeout)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.2):
                if cancel.is_set():
                    try:
                        self.abort(why)
                    except IndisyncError as exc:  # the link is down: the command's own bound still holds
                        log.warning("could not abort %s's %s: %s", self.name, args.command, exc)
                    return

        watcher = threading.Thread(target=watch, name=f"{args.command}-cancel-{self.name}", daemon=True)
        watcher.start()
        try:
            return self._call(args, timeout)
        finally:
            done.set()


class MasterImaging:
    """The master's frames and sequence, as the night's expose and refocus actions see them."""

    def __init__(self, master):
        self.master = master

    progress = property(lambda self: self.master.progress)
    plan = property(lambda self: self.master.plan)
    triggers = property(lambda self: self.master.triggers)

    def take(self, frame, token):
        m = self.master
        m.abort_event.clear()
        if token.is_set():  # cancelled while we cleared: its abort came before; take nothing
            return None
        m.last_frame_error = None
        record = m.synced_exposure(frame)
        if record is None and m.last_frame_error is not None:
            raise IndisyncError(m.last_frame_error)  # not taken (not aborted): the night says why
        return record

    def retake_due(self, frame, record) -> bool:
        return self.master._retake_due(frame, record)

    def temperature(self):
        return self.master._temperature()

    def refocus_all(self, reason: str) -> None:
        self.master.refocus_all(reason)

    def save_progress(self) -> None:
        save_master_progress(self.master.store, self.master.progress)

    def season_frame(self, now: float):
        """The season: the master's next frame for the current target (node/season_master.py)."""
        return self.master.season_master.next_frame(now)

    def season_next_duration(self, now: float) -> float:
        return self.master.season_master.next_duration(now)

    def guider_rebuilt(self) -> bool:
        rebuilt = self.master._guiding_rebuilt
        if rebuilt.is_set():
            rebuilt.clear()
            return not self.master.progress.finished(self.master.cfg.master.batches)
        return False


def dome_closed(master) -> bool:
    """The master's dome shutter reads closed (False: open, unknown, or no dome): darks on demand count
    the OTAs as covered then. A shutter still moving (the Dome Simulator closes its closed shutter
    again when it parks) is waited for, up to indi.move_timeout."""
    try:
        dome = master.supervisor.get().dome
    except IndisyncError:
        return False
    if dome is None:
        return False
    return dome.closed_when_still(master.cfg.indi.move_timeout, cancel=master.stop_event)


def rig_participants(master) -> list:
    """The master's own camera first, then every live slave."""
    return [LocalParticipant(master)] + [RemoteParticipant(master.client, master.registry, node)
                                         for node in master.registry.live("slave")]


def build_rig(master) -> Rig:
    season = getattr(master, "season", None)

    def participants() -> list:
        return rig_participants(master)

    return Rig(name=master.name, cfg=master.cfg, devices=master.supervisor.get, participants=participants,
               imaging=MasterImaging(master), guiding=lambda: master.guiding, store=master.store,
               report=master.link, stop_event=master.stop_event, device_lock=master.device_lock,
               frames=lambda: master.frames, alarm=master.raise_alarm,
               # the season (a scheduler: section): its current target is where the night points
               target=season.aim if season is not None else None, season=season)
