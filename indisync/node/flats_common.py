"""What sky and panel flats share on a node: the ADU band, the loop over sets (each set's outcome,
its calib_set_done event and library entry) and the fate of each frame (kept in band, else
discarded and said so).

Every ADU figure is a mean of the whole frame; the band is ``target ± tolerance`` times the camera's
full scale (2**CCD_BITSPERPIXEL - 1). A set's status: ok (``count`` kept), partial (fewer: the sky
ran out, the time ran out, a device failed after some frames), failed (none kept, with the reason),
stopped (aborted). Once the run is stopped or its time is up the remaining sets are not started and
say why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..calib.model import FlatSet
from ..contracts import FlatsArgs, FlatsResult
from ..errors import ActionCancelled, IndisyncError
from .calib_run import (CalibRun, Frame, RunStopped, RunTimedOut, SetTally, camera_settings, overall, point_for,
                          reading)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlatParams:
    """One run's numbers: ADU as means incl. bias, exposures in s."""

    target: float
    low: float
    high: float
    count: int
    min_exposure: float
    max_exposure: float
    halving_s: float
    full_scale: float

    @classmethod
    def resolve(cls, args: FlatsArgs, settings, full_scale: float) -> "FlatParams":
        """The command's values where it gives them, else this node's flats: section."""
        def pick(name):
            value = getattr(args, name)
            return getattr(settings, name) if value is None else value

        target, tolerance = pick("target_adu"), pick("tolerance")
        if not 0 < tolerance < target or target + tolerance >= 1:
            raise IndisyncError(f"flats: target_adu {target:g} ± tolerance {tolerance:g} is not a band inside "
                                "0..1 of full scale; allowed: 0 < tolerance < target_adu, target_adu + tolerance < 1")
        lo_e, hi_e = pick("min_exposure"), pick("max_exposure")
        if lo_e > hi_e:
            raise IndisyncError(f"flats: min_exposure {lo_e:g} s > max_exposure {hi_e:g} s")
        return cls(target * full_scale, (target - tolerance) * full_scale, (target + tolerance) * full_scale,
                   int(pick("count")), float(lo_e), float(hi_e), float(pick("sky_halving_s")), float(full_scale))

    def band_text(self) -> str:
        return f"{self.low:.0f}..{self.high:.0f} ADU"


# take_set(run, fset, params, tally, number, of) -> (status, reason); it may raise (see run_flat_sets)
TakeSet = Callable[[CalibRun, FlatSet, FlatParams, SetTally, int, int], tuple[str, str | None]]


def run_flat_sets(run: CalibRun, sets: list[FlatSet], params: FlatParams, take_set: TakeSet) -> FlatsResult:
    results, statuses = [], []
    halt: tuple[str, str] | None = None  # (status, why) once stopped or out of time: the rest not started
    for number, fset in enumerate(sets, 1):
        tally = SetTally()
        if halt is not None:
            status, reason = halt[0], f"not started: {halt[1]}"
        else:
            try:
                with camera_settings(run.camera, fset.gain, fset.offset):
                    point_for(run, fset)
                    status, reason = take_set(run, fset, params, tally, number, len(sets))
            except (RunStopped, ActionCancelled) as exc:
                status, reason = "stopped", str(exc)
                halt = ("stopped", "the run was stopped")
            except RunTimedOut as exc:
                status, reason = ("partial" if tally.kept else "failed"), str(exc)
                halt = ("failed", str(exc))
            except IndisyncError as exc:  # SetFailed, CalibError, a device that failed: this set only
                status, reason = ("partial" if tally.kept else "failed"), str(exc)
            except Exception as exc:  # noqa: BLE001 - a bug in one set must not lose the others' frames
                log.exception("flats of %s", fset.label())
                status, reason = ("partial" if tally.kept else "failed"), f"unexpected error: {exc}"
        if status == "ok" and tally.kept < params.count:
            status = "partial" if tally.kept else "failed"
        (log.info if status == "ok" else log.warning)(
            "flats %s: %s, %d/%d kept, %d taken%s", fset.label(), status, tally.kept, params.count, tally.taken,
            f": {reason}" if reason else "")
        statuses.append(status)
        results.append(_set_result(fset, status, reason, tally))
        _set_done(run, fset, status, reason, tally, params)
    stopped = halt is not None and halt[0] == "stopped"
    status = overall(statuses, stopped)
    reasons = [f"{r['filter'] or 'no filter'} bin{r['binning']}: {r['reason']}" for r in results
               if r["status"] != "ok" and r.get("reason")]
    return FlatsResult(status=status, reason="; ".join(reasons)[:500] or None, sets=results,
                       full_scale=params.full_scale, seconds=run.seconds(), started=run.started_iso)


def _set_result(fset: FlatSet, status: str, reason: str | None, tally: SetTally) -> dict:
    result = {**fset.to_wire(), "status": status, "reason": None if reason is None else reason[:500],
              "kept": tally.kept, "taken": tally.taken, "discarded": tally.discarded,
              "exposures": [round(e, 4) for e in tally.exposures[:1000]],
              "adu": [round(a, 1) for a in tally.adu[:1000]], "files": [f[:255] for f in tally.files[:1000]],
              "seconds": tally.seconds()}
    result.update(tally.extra)
    return result


def _set_done(run: CalibRun, fset: FlatSet, status: str, reason: str | None, tally: SetTally,
              params: FlatParams) -> None:
    run.report("calib_set_done", kind="flat", mode=run.mode, direction=run.direction, **fset.to_wire(),
               status=status, reason=None if reason is None else reason[:500], kept=tally.kept, taken=tally.taken,
               count=params.count, adu_min=_min(tally.adu), adu_max=_max(tally.adu),
               exposure_min=_min(tally.exposures), exposure_max=_max(tally.exposures),
               folder=str(run.folder)[-255:], seconds=tally.seconds())
    if tally.kept:
        try:
            run.library.add_flat_set(run.node.name, fset, run.mode, tally.kept, _min(tally.exposures),
                                     _max(tally.exposures), _min(tally.adu), _max(tally.adu), str(run.folder),
                                     time.time(), direction=run.direction)
        except Exception as exc:  # noqa: BLE001 - the frames are on disk; the library only remembers them
            log.error("could not record flats of %s in the calibration library: %s", fset.label(), exc)


def _min(values: list) -> float | None:
    return round(min(values), 4) if values else None


def _max(values: list) -> float | None:
    return round(max(values), 4) if values else None


def frame_report(run: CalibRun, fset: FlatSet, params: FlatParams, frame: Frame, what: str, tally: SetTally,
                 number: int, of: int, file: str | None = None, reason: str | None = None) -> None:
    """calib_progress, the state's ``calib`` and the command's progress for one frame."""
    setpoint = run.node.cooling.setpoint
    run.report("calib_progress", kind="flat", mode=run.mode, direction=run.direction, **fset.to_wire(),
               exposure=frame.exposure, setpoint=setpoint, temperature=frame.temperature, adu=round(frame.mean, 1),
               target_adu=round(params.target, 1), band=[round(params.low, 1), round(params.high, 1)],
               frame=what, kept=tally.kept, count=params.count, file=file, reason=reason)
    run.state({"kind": "flat", "mode": run.mode, "filter": fset.filter, "exposure": frame.exposure,
               "adu": round(frame.mean, 1), "kept": tally.kept, "count": params.count, "set": number, "sets": of})
    run.tell(min(1.0, (number - 1 + tally.kept / params.count) / of), filter=fset.filter, kept=tally.kept,
             count=params.count, exposure=frame.exposure, adu=round(frame.mean, 1), frame=what)


def test_frame(run: CalibRun, fset: FlatSet, params: FlatParams, frame: Frame, tally: SetTally, number: int,
               of: int) -> None:
    """A frame that measures (the sky's first of a set, a panel search step): counted, never kept."""
    tally.taken += 1
    log.info("flats %s: test frame %.3g s, mean %.0f ADU (band %s)", fset.label(), frame.exposure, frame.mean,
             params.band_text())
    frame_report(run, fset, params, frame, "test", tally, number, of)


def keep_or_discard(run: CalibRun, fset: FlatSet, params: FlatParams, frame: Frame, tally: SetTally, number: int,
                    of: int) -> bool:
    """Write the frame when its mean is in the band (True); else discard it and say why (False)."""
    tally.taken += 1
    if not params.low <= frame.mean <= params.high:
        tally.discarded += 1
        side = "above" if frame.mean > params.high else "below"
        why = f"mean {frame.mean:.0f} ADU {side} the band {params.band_text()} at {frame.exposure:.3g} s"
        log.info("flats %s: discarded: %s", fset.label(), why)
        frame_report(run, fset, params, frame, "discarded", tally, number, of, reason=why)
        return False
    camera = run.camera
    path = run.save(frame, "flat", fset.binning, fset.filter, gain=reading(camera, "gain"),
                    offset=reading(camera, "offset"), set_temp=run.node.cooling.setpoint,
                    rotator_angle=fset.rotator_angle, name_exposure=name_seconds(frame.exposure))
    tally.kept += 1
    tally.exposures.append(frame.exposure)
    tally.adu.append(frame.mean)
    tally.files.append(path.name)
    tally.temperatures.append(frame.temperature)
    log.info("flats %s: kept %d/%d: %s (%.3g s, %.0f ADU)", fset.label(), tally.kept, params.count, path.name,
             frame.exposure, frame.mean)
    frame_report(run, fset, params, frame, "kept", tally, number, of, file=path.name)
    return True


def name_seconds(exposure: float) -> float:
    """A flat's exposure as its file name says it: 3 significant digits (the sky's ramp makes every
    frame's exposure a little different; EXPTIME in the header is exact)."""
    return float(f"{exposure:.3g}")


def flat_sets_of(args: FlatsArgs) -> list[FlatSet]:
    return [FlatSet.from_wire(s) for s in args.sets]
