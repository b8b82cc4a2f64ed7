"""Take a frame and solve it: the one path behind `indisync solve` and a node's `solve` command.

The frame is taken under the caller's device lock (``hold``), the solve runs after the lock is
released, so a node can expose again while astrometry.net works. The position hint is the
mount's position (JNow from INDI, converted to J2000), or the one the caller passes (a slave
without a mount gets the master's solved centre), or the frame's RA/DEC.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import fields

from ..contracts import SolveResult
from ..errors import DeviceError, ProtocolError
from .coalign import FieldSolution
from .geometry import tangent_offset
from .settings import AcquireSettings
from .solver import SolveHints, Solution, hints_from_header, solve_hdu


def wait_until_still(mount, timeout: float) -> None:
    """A frame taken while the mount slews shows another field: wait for the slew to end."""
    deadline = time.monotonic() + timeout
    while True:
        snap = mount.client.snapshot(mount.name, "EQUATORIAL_EOD_COORD")
        if snap is None or snap.state != "Busy":
            return
        if time.monotonic() > deadline:
            raise DeviceError(f"{mount.name} is still slewing after {timeout:g}s (acquire.slew_timeout); not solving")
        time.sleep(0.2)


def take_and_solve(camera, mount, settings: AcquireSettings, exposure: float | None = None,
                   binning: int | None = None, hint: tuple[float, float] | None = None,
                   hold=None, cancel: threading.Event | None = None) -> dict:
    exposure = settings.exposure if exposure is None else exposure
    binning = settings.binning if binning is None else binning
    ref = ref_from = focal = None
    with hold if hold is not None else contextlib.nullcontext():
        if mount is not None:
            wait_until_still(mount, settings.slew_timeout)
            ref, ref_from = mount.position_j2000(), "mount"
            focal = mount.focal_length_mm
        hdu = camera.expose(exposure, binning)
    if ref is None and hint is not None:
        ref, ref_from = hint, "hint"
    hints = hints_from_header(hdu.header, settings, focal_mm=focal,
                              ra=None if ref is None else ref[0], dec=None if ref is None else ref[1])
    if ref is None and hints.ra is not None:
        ref, ref_from = (hints.ra, hints.dec), "header"
    solution = solve_hdu(hdu, hints, settings, cancel)
    return solution_report(solution, hints, ref, ref_from)


class SolveReport(SolveResult):
    """A solve's result: `indisync solve --json` prints it, a node's `solve` command answers with
    it, and the master reads a slave's answer back with from_dict. Its fields are the `solve`
    command's result (indisync.contracts.SolveResult); this adds the field's geometry."""

    def as_dict(self) -> dict:
        return self.to_wire()

    @classmethod
    def from_dict(cls, data: dict) -> "SolveReport":
        """ValueError names what is missing or out of range; extra keys are ignored."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"a solve result without {', '.join(missing)}")
        try:
            return cls(**{n: data[n] for n in names})
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None

    def field(self) -> FieldSolution:
        return FieldSolution(self.ra, self.dec, self.rotation_deg, self.field_w_arcmin, self.field_h_arcmin, self.parity)


def solution_report(solution: Solution, hints: SolveHints, ref: tuple[float, float] | None,
                    ref_from: str | None) -> dict:
    """The solve's result as plain data (SolveReport.as_dict)."""
    east = north = offset = None
    if ref is not None:
        east, north = tangent_offset(ref[0], ref[1], solution.ra, solution.dec)
        offset = (east ** 2 + north ** 2) ** 0.5
    return SolveReport(
        ra=solution.ra, dec=solution.dec, rotation_deg=solution.rotation_deg, scale_arcsec=solution.scale_arcsec,
        parity=solution.parity, field_w_arcmin=solution.field_w_arcmin, field_h_arcmin=solution.field_h_arcmin,
        offset_arcsec=offset, offset_east_arcsec=east, offset_north_arcsec=north,
        offset_from=ref_from if ref is not None else None,
        reference_ra=None if ref is None else ref[0], reference_dec=None if ref is None else ref[1],
        scale_hint_arcsec=hints.scale_arcsec, scale_source=hints.scale_source, stars=solution.stars,
        index=solution.index, seconds=round(solution.seconds, 3),
    ).as_dict()
