"""What the night's executor and its actions see: a ``Rig``, never the master node.

pyobs-core's interfaces are the model: the night talks to small typed interfaces, so the same
executor runs on the real rig (indisync.node.master_rig builds it from the master's devices, camera
service and MQTT link) and in unit and model-based tests (over stand-in devices).

- ``participants``: every camera node: the master's own camera (local) and each live slave (remote,
  over MQTT); each answers cool / warm / abort / solve / rotate / flats / darks with an ``Outcome``;
- ``imaging``: the master's synchronised frames and the sequence (which frame is next, refocus);
- ``devices()``: the current mount, dome and weather station (rebuilt by the supervisor after an
  indiserver reconnect, so always asked for anew);
- ``guiding()``: the current guider cycle, or None; only indisync.night.actions.guide starts or stops it;
- ``store``, ``report``: the state on disk, and what the rig says on MQTT;
- ``alarm``: alarms to a phone (park or close failed, the night ended early), sent from a worker;
- ``arbiter``: the one owner of mount and dome motion (indisync.night.arbiter);
- ``target()``: where the night points now (``Aim``): master.target, or the season's current target
  (indisync.season.runtime) when the config has a scheduler: section; None: nowhere to point.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .arbiter import MotionArbiter


@dataclass(frozen=True)
class Aim:
    """Where the night points: a name (OBJECT, file names), J2000 degrees and an optional position
    angle (degrees east of north) for the OTAs' rotators."""

    name: str
    ra: float
    dec: float
    pa: float | None = None


def config_aim(cfg) -> Aim | None:
    """master.target as an Aim (None without coordinates)."""
    coords = cfg.master.target_coords
    return None if coords is None else Aim(cfg.master.target, coords.ra, coords.dec)


def aim_of(rig) -> Aim | None:
    """Where ``rig`` points now: ``rig.aim()``; a stand-in without one (a test's namespace): master.target."""
    aim = getattr(rig, "aim", None)
    return aim() if callable(aim) else config_aim(rig.cfg)


@dataclass(frozen=True)
class Outcome:
    """One node's answer to a command: ok, its result (the command's result fields), or why not."""

    ok: bool
    result: dict = field(default_factory=dict)
    reason: str | None = None
    answered: bool = True  # False: no answer within the bound (timed out, or the node died)


class Participant(Protocol):
    name: str
    local: bool

    def cool(self, timeout: float) -> Outcome: ...

    def warm(self, timeout: float) -> Outcome: ...

    def abort(self, reason: str) -> None: ...

    def solve(self, hint: dict, timeout: float) -> Outcome: ...

    # turn its rotator to ``pa`` (degrees E of N), solving to check (the `rotate` command,
    # contracts.RotateResult: status ok / failed / no_rotator); ``cancel`` (is_set()) ends it early
    def rotate(self, pa: float, hint: dict, timeout: float, cancel=None) -> Outcome: ...

    # calibration: its flats (contracts.FlatsArgs: sky or panel, the sets for it) and darks
    # (contracts.DarksArgs); the result is the command's (FlatsResult / DarksResult fields). ``cancel``
    # (is_set()) ends it early: the node aborts, frames kept so far stay (status "stopped")
    def flats(self, args, timeout: float, cancel=None) -> Outcome: ...

    def darks(self, args, timeout: float, cancel=None) -> Outcome: ...


class Imaging(Protocol):
    """The master's side of the imaging sequence."""

    progress: Any  # indisync.sequence.state_store.MasterProgress
    plan: list  # the batch's PlannedFrame list
    triggers: Any  # indisync.sequence.triggers.RefocusTriggers

    def take(self, frame, token) -> Any: ...  # every node's exposure of ``frame``; the master's record or None

    def retake_due(self, frame, record) -> bool: ...

    def temperature(self) -> float | None: ...

    def refocus_all(self, reason: str) -> None: ...  # every node autofocuses at once (guiding is the caller's)

    def save_progress(self) -> None: ...

    def guider_rebuilt(self) -> bool: ...  # True once after the guider was rebuilt on new devices


class Reporter(Protocol):
    def update_state(self, **fields) -> None: ...

    def event(self, kind: str, **fields) -> None: ...

    def error(self, message: str) -> None: ...


class Store(Protocol):
    def get(self, section: str) -> Any: ...

    def put(self, section: str, value: Any) -> None: ...


@dataclass
class Rig:
    name: str
    cfg: Any
    devices: Callable[[], Any]
    participants: Callable[[], list]  # list[Participant]: the master's own first, then each live slave
    imaging: Imaging
    guiding: Callable[[], Any]
    store: Store
    report: Reporter
    stop_event: threading.Event
    device_lock: Any
    arbiter: MotionArbiter = field(default_factory=MotionArbiter)
    frames: Callable[[], int] = lambda: 0  # frames the master has taken (for the log)
    # raise an alarm (indisync.alerts.Alarm) through the master's alerter: never blocks, never raises
    alarm: Callable[[Any], bool] = lambda alarm: False
    # where to point now; None (the default): master.target from the config (config_aim)
    target: Callable[[], Aim | None] | None = None
    season: Any = None  # indisync.season.runtime.SeasonRuntime when the config has a scheduler: section

    def aim(self) -> Aim | None:
        return self.target() if self.target is not None else config_aim(self.cfg)


def each(participants: list, fn: Callable[[Any], Outcome], timeout: float, what: str) -> dict[str, Outcome]:
    """``fn(p)`` for every participant at once, each on its own thread; bounded by ``timeout``. A
    participant that raised or did not answer in time is a failed Outcome naming why."""
    results: dict[str, Outcome] = {}
    lock = threading.Lock()

    def run(p) -> None:
        try:
            outcome = fn(p)
        except Exception as exc:  # noqa: BLE001 - one node's failure is its outcome, never the night's
            outcome = Outcome(False, reason=f"{what} failed: {exc}"[:500])
        with lock:
            results.setdefault(p.name, outcome)

    threads = [threading.Thread(target=run, args=(p,), name=f"night-{what}-{p.name}", daemon=True)
               for p in participants]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        for p in participants:
            results.setdefault(p.name, Outcome(False, reason=f"no {what} answer within {timeout:g} s",
                                               answered=False))
        return dict(results)
