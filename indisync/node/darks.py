"""Darks and bias on one node, into its dark library (indisync.calib.library).

Per set (a dark of an exposure, or a bias; binning, gain, offset): a matching set in this node's
library younger than darks.max_age_days (at the setpoint within camera.cooling.tolerance) is kept:
"skipped", its age said. The rest are taken only when the OTA is covered: the sender says so
(``covered``: the dome read closed, `indisync darks --covered`), the camera has a shutter
(camera.shutter) or this node's dust cap (indi.dust_cap) closes; else they wait ("waiting", the
reason naming what would cover it). The sensor must be within camera.cooling.tolerance of the
setpoint (the command's, else camera.cooling.setpoint), waited for up to darks.cool_wait_s, else the
sets wait; a camera without a cooler (or a node without camera.cooling) takes them at ambient, said
in the result. A bias is taken at the camera's shortest exposure (named ``BIAS_{bin}_0s``). A set
stopped or out of time halfway is not recorded in the library (its frames stay on disk).
"""

from __future__ import annotations

import logging
import time

from ..calib.model import DarkSet
from ..contracts import DarksArgs, DarksResult
from ..errors import ActionCancelled, IndisyncError
from .calib_run import CalibRun, RunStopped, RunTimedOut, SetTally, camera_settings, reading

log = logging.getLogger(__name__)

NOT_COVERED = ("nothing covers the OTA: no dome closed, no dust cap, no shutter; cover it and run "
               "`indisync darks --covered`")


def darks_status(statuses: list[str], stopped: bool) -> str:
    if stopped:
        return "stopped"
    if not statuses:
        return "nothing"
    if all(s in ("taken", "skipped") for s in statuses):
        return "ok"
    if all(s in ("taken", "skipped", "waiting") for s in statuses):
        return "waiting"
    if all(s == "failed" for s in statuses):
        return "failed"
    return "partial"


def covered_reason(run: CalibRun, args: DarksArgs) -> str | None:
    """None when the OTA is dark (said by the sender, a shutter, or the dust cap closed); else why not."""
    if args.covered:
        return None
    if run.cfg.camera.shutter:
        return None
    cap = run.devices.dust_cap
    if cap is not None:
        try:
            cap.close()
        except IndisyncError as exc:
            return f"the dust cap {cap.name} did not close ({exc}); {NOT_COVERED}"
        if cap.closed is True:
            return None
    return NOT_COVERED


def cooler_reason(run: CalibRun, setpoint: float | None, tolerance: float, wait_s: float) -> str | None:
    """Wait (up to ``wait_s``, bounded by the run) until the sensor is within ``tolerance`` of
    ``setpoint``; None when it is (or there is no setpoint: ambient), else why the darks wait."""
    if setpoint is None:
        return None
    cooling = run.node.cooling
    if cooling.setpoint is None or abs(cooling.setpoint - setpoint) > 1e-6:
        cooling.set_setpoint(setpoint, tolerance)
    ends = time.monotonic() + min(wait_s, max(0.0, run.time_left))
    shown = False
    while True:
        temperature = run.camera.temperature
        if temperature is not None and abs(temperature - setpoint) <= tolerance:
            return None
        if time.monotonic() >= ends:
            now = "unknown" if temperature is None else f"{temperature:.1f} C"
            return (f"the cooler is not there yet: the sensor is at {now}, not within {tolerance:g} C of the "
                    f"setpoint {setpoint:g} C after {wait_s:g} s (darks.cool_wait_s); the darks wait for it")
        if not shown:
            log.info("darks: waiting for the sensor (%s C) to reach %g C ± %g (up to %g s)", temperature, setpoint,
                     tolerance, wait_s)
            run.state({"kind": "dark", "kept": 0, "count": 0}, phase="waiting")
            shown = True
        run.check()
        run.node.abort_event.wait(1.0)


def take_darks(run: CalibRun, args: DarksArgs) -> DarksResult:
    cfg = run.cfg
    sets = [DarkSet.from_wire(s) for s in args.sets]
    if not sets:
        return DarksResult(status="nothing", reason="no dark sets asked for")
    cooling = cfg.camera.cooling
    has_cooler = run.camera.has_cooler
    setpoint = args.setpoint if args.setpoint is not None else (cooling.setpoint if cooling is not None else None)
    ambient = None
    if not has_cooler:
        setpoint, ambient = None, "the camera has no cooler: taken at ambient"
    elif setpoint is None:
        ambient = "camera.cooling is null: taken at ambient"
    tolerance = cooling.tolerance if cooling is not None else 1.0
    count = args.count or cfg.darks.count
    max_age = args.max_age_days if args.max_age_days is not None else cfg.darks.max_age_days
    wait_s = args.cool_wait_s if args.cool_wait_s is not None else cfg.darks.cool_wait_s
    now = time.time()
    results: list[dict | None] = [None] * len(sets)
    todo = []
    for i, dset in enumerate(sets):
        record = run.library.find_dark_set(run.node.name, dset, setpoint, tolerance, max_age, now)
        if record is None:
            todo.append(i)
            continue
        age = record.age_days(now)
        results[i] = _result(dset, "skipped", f"a matching set {age:.1f} days old is kept (darks.max_age_days "
                                              f"{max_age:g})", SetTally(), setpoint, count=record.count,
                             temperature=record.temperature, age_days=round(age, 3))
        _set_done(run, dset, results[i], count)
    stopped = False
    if todo:
        try:
            why = covered_reason(run, args) or cooler_reason(run, setpoint, tolerance, wait_s)
        except (RunStopped, ActionCancelled) as exc:
            why, stopped = str(exc), True
        except RunTimedOut as exc:
            why = str(exc)
        except IndisyncError as exc:  # the cooler refused its setpoint, the camera went away
            why = f"the camera could not be made ready for darks: {exc}"
        halt = ("stopped", why) if stopped else (("waiting", why) if why else None)
        for i in todo:
            dset = sets[i]
            tally = SetTally()
            if halt is not None:
                status, reason = halt[0], halt[1] if halt[0] == "waiting" else f"not started: {halt[1]}"
            else:
                try:
                    _take_set(run, dset, setpoint, count, tally, todo.index(i) + 1, len(todo))
                    status, reason = "taken", ambient
                except (RunStopped, ActionCancelled) as exc:
                    status, reason, stopped = "stopped", str(exc), True
                    halt = ("stopped", "the run was stopped")
                except RunTimedOut as exc:
                    status, reason = "failed", str(exc)
                    halt = ("failed", str(exc))
                except IndisyncError as exc:
                    status, reason = "failed", str(exc)
                except Exception as exc:  # noqa: BLE001 - one set's bug must not lose the others
                    log.exception("darks %s", dset.label())
                    status, reason = "failed", f"unexpected error: {exc}"
            results[i] = _result(dset, status, reason, tally, setpoint)
            _set_done(run, dset, results[i], count)
            if status == "taken":
                try:
                    run.library.add_dark_set(run.node.name, dset, setpoint, tally.temperature(), tally.kept,
                                             str(run.folder), time.time())
                except Exception as exc:  # noqa: BLE001 - the frames are on disk; the library only remembers
                    log.error("could not record darks %s in the calibration library: %s", dset.label(), exc)
    statuses = [r["status"] for r in results]
    status = darks_status(statuses, stopped)
    reasons = list(dict.fromkeys(r["reason"] for r in results if r["status"] not in ("taken", "skipped")
                                 and r.get("reason")))
    if status == "ok" and ambient:
        reasons.append(ambient)
    for r in results:
        log.info("darks %s: %s%s", _label(r), r["status"], f" ({r['reason']})" if r.get("reason") else "")
    return DarksResult(status=status, reason="; ".join(reasons)[:500] or None, sets=results, seconds=run.seconds())


def _take_set(run: CalibRun, dset: DarkSet, setpoint: float | None, count: int, tally: SetTally, number: int,
              of: int) -> None:
    camera = run.camera
    exposure = dset.exposure if dset.kind == "dark" else max(camera.min_exposure, 0.001)
    with camera_settings(camera, dset.gain, dset.offset):
        while tally.kept < count:
            frame = run.expose(dset.kind, exposure, dset.binning)
            path = run.save(frame, dset.kind, dset.binning, None, gain=reading(camera, "gain"),
                            offset=reading(camera, "offset"), set_temp=setpoint, name_exposure=dset.exposure)
            tally.taken += 1
            tally.kept += 1
            tally.exposures.append(frame.exposure)
            tally.adu.append(frame.mean)
            tally.files.append(path.name)
            tally.temperatures.append(frame.temperature)
            run.report("calib_progress", kind=dset.kind, binning=dset.binning, gain=dset.gain, offset=dset.offset,
                       exposure=frame.exposure, setpoint=setpoint, temperature=frame.temperature,
                       adu=round(frame.mean, 1), frame="kept", kept=tally.kept, count=count, file=path.name)
            run.state({"kind": dset.kind, "exposure": frame.exposure, "adu": round(frame.mean, 1), "kept": tally.kept,
                       "count": count, "set": number, "sets": of})
            run.tell(min(1.0, (number - 1 + tally.kept / count) / of), kind=dset.kind, exposure=frame.exposure,
                     kept=tally.kept, count=count)


def _result(dset: DarkSet, status: str, reason: str | None, tally: SetTally, setpoint: float | None,
            count: int | None = None, temperature: float | None = None, age_days: float | None = None) -> dict:
    return {**dset.to_wire(), "status": status, "reason": None if reason is None else reason[:500],
            "count": tally.kept if count is None else count, "setpoint": setpoint,
            "temperature": tally.temperature() if temperature is None else round(temperature, 2),
            "age_days": age_days, "files": [f[:255] for f in tally.files[:1000]], "seconds": tally.seconds()}


def _set_done(run: CalibRun, dset: DarkSet, result: dict, count: int) -> None:
    run.report("calib_set_done", kind=dset.kind, binning=dset.binning, gain=dset.gain, offset=dset.offset,
               exposure=dset.exposure, setpoint=result["setpoint"], temperature=result["temperature"],
               status=result["status"], reason=result["reason"], kept=len(result["files"]),
               taken=len(result["files"]), count=count, folder=str(run.folder)[-255:], seconds=result["seconds"])


def _label(result: dict) -> str:
    return DarkSet.from_wire(result).label()
