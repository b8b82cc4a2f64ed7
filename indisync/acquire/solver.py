"""Plate solving with astrometry.net's ``solve-field``, bounded in time.

solve-field runs as a child in its own process group, with the scale hint from the camera and the
focal length and the position hint from the mount, ``--cpulimit`` set to the timeout and a hard
kill of the whole group when the wall-clock timeout passes (the engine is a grandchild; killing
only solve-field would leave it running). The caller's thread waits; a node runs a solve in its
command's worker thread, never in the MQTT or INDI callback threads, and ``cancel`` ends it early.

Known causes of failure come back as distinct errors: no stars in the frame (NoStarsError), no
index for the field's scale (NoIndexError, checked before solving, naming the Debian package),
timeout (SolveTimeout), and no match (SolveError).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import NoIndexError, NoStarsError, SolveError, SolveTimeout
from .indexes import find_indexes, index_dirs, install_hint
from .settings import AcquireSettings

log = logging.getLogger(__name__)
ARCSEC_PER_RAD_MM_UM = 206.264806  # arcsec per pixel = this * pixel_um / focal_mm


@dataclass(frozen=True)
class SolveHints:
    """What we expect before solving. Any of these may be unknown (None): the solve gets slower."""

    scale_arcsec: float | None = None  # arcsec per (binned) pixel
    ra: float | None = None  # J2000 degrees
    dec: float | None = None
    width_px: int | None = None
    height_px: int | None = None
    scale_source: str = "unknown"  # where the scale came from, for messages

    @property
    def field_arcmin(self) -> float | None:
        if self.scale_arcsec is None or not self.width_px or not self.height_px:
            return None
        return self.scale_arcsec * max(self.width_px, self.height_px) / 60.0


@dataclass(frozen=True)
class Solution:
    ra: float  # J2000 degrees, field centre
    dec: float
    rotation_deg: float  # astrometry.net's orientation at the centre: image "up" this many degrees E of N
    scale_arcsec: float  # arcsec per (binned) pixel
    parity: int  # astrometry.net's parity: 1 or -1 (a mirrored image, e.g. top-down row order, flips it)
    field_w_arcmin: float
    field_h_arcmin: float
    width_px: int
    height_px: int
    stars: int  # sources extracted
    index: str | None  # which index solved it
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def scale_from(pixel_um: float | None, focal_mm: float | None, binning: int = 1) -> float | None:
    if not pixel_um or not focal_mm:
        return None
    return ARCSEC_PER_RAD_MM_UM * pixel_um * binning / focal_mm


def hints_from_header(header, settings: AcquireSettings, focal_mm: float | None = None,
                      ra: float | None = None, dec: float | None = None) -> SolveHints:
    """Hints for a frame: scale from (config or INDI) focal length and the header's pixel size and
    binning; position from the caller (the mount, J2000) or else the header's RA/DEC (J2000)."""
    width, height = header.get("NAXIS1"), header.get("NAXIS2")
    binning = int(header.get("XBINNING", 1) or 1)
    pixel = settings.pixel_size_um or header.get("PIXSIZE1")
    if settings.focal_length_mm:
        focal, source = settings.focal_length_mm, "config acquire.focal_length_mm"
    elif focal_mm:
        focal, source = focal_mm, "the mount's TELESCOPE_INFO"
    else:
        focal, source = header.get("FOCALLEN") or None, "the frame's FOCALLEN"
    scale = scale_from(pixel, focal, binning)
    if scale is None and header.get("SCALE"):
        scale, source = float(header["SCALE"]), "the frame's SCALE"
    if ra is None and "RA" in header and "DEC" in header:
        try:
            ra, dec = float(header["RA"]), float(header["DEC"])
        except (TypeError, ValueError):
            ra = dec = None
    return SolveHints(scale, ra, dec, width, height, source if scale else "unknown")


def check_indexes(hints: SolveHints, settings: AcquireSettings) -> None:
    """Fail at once, naming the package to install, when no index can serve this field."""
    dirs = index_dirs(settings.index_dirs)
    indexes = find_indexes(dirs)
    where = ", ".join(str(d) for d in dirs) or "(none)"
    field = hints.field_arcmin
    if not indexes:
        hint = install_hint(field) if field else "install astrometry-data-tycho2 (or index files for your field)"
        raise NoIndexError(f"no astrometry.net index files in {where}; {hint}")
    if field is not None and not any(ix.serves(field) for ix in indexes):
        have = ", ".join(sorted({f"{ix.scale_low_arcmin:.0f}'-{ix.scale_high_arcmin:.0f}'" for ix in indexes
                                 if ix.scale_low_arcmin is not None}))
        raise NoIndexError(
            f"no index file for a {field:.0f}' field in {where} (installed quad scales: {have}); "
            f"{install_hint(field)}"
        )


def check_stars(path: str | os.PathLike, settings: AcquireSettings) -> int:
    """Fail at once on a frame without stars (clouds, a closed cover, a dark frame) instead of letting
    astrometry.net chew on noise: our own detector (which drops hot pixels) counts them in ~0.2 s."""
    import numpy as np
    from astropy.io import fits

    from ..analysis.detection import detect
    from ..analysis.settings import AnalysisSettings

    with fits.open(path) as hdul:
        hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) == 2), None)
        if hdu is None:
            raise SolveError(f"{path} holds no 2-D image to solve")
        data = np.asarray(hdu.data, dtype=np.float32)
    stars = len(detect(data, AnalysisSettings()))
    if stars < settings.min_stars:
        raise NoStarsError(
            f"only {stars} star(s) found in the frame (need acquire.min_stars = {settings.min_stars}): clouds, a closed "
            "cover, dew, a dark frame or far out of focus? Check the frame, or raise acquire.exposure"
        )
    return stars


def solve_file(path: str | os.PathLike, hints: SolveHints, settings: AcquireSettings,
               cancel: threading.Event | None = None) -> Solution:
    """Solve one FITS frame. Raises a SolveError subclass naming the reason when it cannot."""
    if shutil.which("solve-field") is None:
        raise SolveError("solve-field is not installed: run ./scripts/setup.sh (Debian package astrometry.net)")
    check_indexes(hints, settings)
    check_stars(path, settings)
    work = Path(tempfile.mkdtemp(prefix="indisync-solve-"))
    try:
        return _run_solve(Path(path), hints, settings, work, cancel)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def solve_hdu(hdu, hints: SolveHints, settings: AcquireSettings, cancel: threading.Event | None = None) -> Solution:
    """Solve a frame held in memory (an astropy HDU) through a temporary file."""
    fd, name = tempfile.mkstemp(prefix="indisync-frame-", suffix=".fits")
    os.close(fd)
    try:
        hdu.writeto(name, overwrite=True)
        return solve_file(name, hints, settings, cancel)
    finally:
        os.unlink(name)


def _command(path: Path, hints: SolveHints, settings: AcquireSettings, work: Path) -> list[str]:
    timeout = settings.solve_timeout
    cmd = ["solve-field", "--overwrite", "--no-plots", "--no-verify", "--crpix-center",
           "--dir", str(work), "--new-fits", "none", "--corr", "none", "--rdls", "none", "--match", "none",
           "--index-xyls", "none", "--solved", "none", "--wcs", str(work / "solution.wcs"),
           "--cpulimit", str(max(1, int(math.ceil(timeout)))), "--downsample", str(settings.downsample)]
    if settings.index_dirs:
        cfg = work / "astrometry.cfg"
        cfg.write_text("".join(f"add_path {Path(d).expanduser()}\n" for d in settings.index_dirs) + "autoindex\n")
        cmd += ["--config", str(cfg)]
    if hints.scale_arcsec:
        tol = settings.scale_tolerance_pct / 100.0
        cmd += ["--scale-units", "arcsecperpix", "--scale-low", f"{hints.scale_arcsec * (1 - tol):.4f}",
                "--scale-high", f"{hints.scale_arcsec * (1 + tol):.4f}"]
    if hints.ra is not None and hints.dec is not None and settings.search_radius_deg is not None:
        cmd += ["--ra", f"{hints.ra % 360.0:.6f}", "--dec", f"{hints.dec:.6f}",
                "--radius", f"{settings.search_radius_deg:g}"]
    cmd.append(str(path))
    return cmd


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=2)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_solve(path: Path, hints: SolveHints, settings: AcquireSettings, work: Path,
               cancel: threading.Event | None) -> Solution:
    cmd = _command(path, hints, settings, work)
    log.debug("solving: %s", " ".join(cmd))
    out_path = work / "solve-field.log"
    started = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=work, start_new_session=True)
    deadline = started + settings.solve_timeout
    try:
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancel is not None and cancel.is_set():
                _kill_group(proc)
                raise SolveError("solve cancelled")
            if time.monotonic() > deadline:
                _kill_group(proc)
                raise SolveTimeout(
                    f"no solution within acquire.solve_timeout ({settings.solve_timeout:g}s); stopped astrometry.net. "
                    f"{_hint_text(hints)}"
                )
    except BaseException:
        _kill_group(proc)
        raise
    seconds = time.monotonic() - started
    output = out_path.read_text(errors="replace")
    stars = _sources(output)
    wcs = work / "solution.wcs"
    if not wcs.exists():
        if stars is not None and stars < settings.min_stars:
            raise NoStarsError(
                f"only {stars} star(s) found in the frame (need {settings.min_stars}): clouds, a closed cover, "
                "dew or far out of focus? Check the frame, or raise acquire.exposure"
            )
        tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:])
        if proc.returncode not in (0, None) and stars is None:
            raise SolveError(f"solve-field failed (exit {proc.returncode}): {tail}")
        raise SolveError(
            f"no solution for {path.name} ({stars} stars found) in {seconds:.1f}s. {_hint_text(hints)}"
        )
    info = _wcsinfo(wcs)
    index = re.search(r"solved with index (\S+?)\.?$", output, re.M)
    return Solution(
        ra=info["ra_center"] % 360.0, dec=info["dec_center"],
        rotation_deg=_wrap180(info.get("orientation_center", info["orientation"])),
        scale_arcsec=info["pixscale"], parity=1 if info.get("parity", 1) >= 0 else -1,
        field_w_arcmin=_arcmin(info["fieldw"], info.get("fieldunits")),
        field_h_arcmin=_arcmin(info["fieldh"], info.get("fieldunits")),
        width_px=int(info["imagew"]), height_px=int(info["imageh"]),
        stars=stars or 0, index=index.group(1) if index else None, seconds=seconds,
    )


def _hint_text(hints: SolveHints) -> str:
    scale = f"{hints.scale_arcsec:.3f}\"/px from {hints.scale_source}" if hints.scale_arcsec else "no scale hint"
    pos = f"near RA {hints.ra:.4f} Dec {hints.dec:.4f}" if hints.ra is not None else "no position hint"
    return (f"Hints used: {scale}, {pos}. Check acquire.focal_length_mm and the camera's pixel size, "
            "or raise acquire.search_radius_deg")


def _sources(output: str) -> int | None:
    found = re.findall(r"simplexy: found (\d+) sources", output)
    return int(found[-1]) if found else None


def _wcsinfo(wcs: Path) -> dict:
    try:
        done = subprocess.run(["wcsinfo", str(wcs)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SolveError(f"wcsinfo could not read the solution: {exc}") from None
    info = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        try:
            info[key] = float(value)
        except ValueError:
            info[key] = value.strip()
    if "ra_center" not in info:
        raise SolveError(f"wcsinfo gave no centre for the solution: {done.stderr.strip()[-300:]}")
    return info


def _arcmin(value: float, units) -> float:
    return {"arcseconds": value / 60.0, "degrees": value * 60.0}.get(units, value)


def _wrap180(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0
