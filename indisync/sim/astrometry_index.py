"""astrometry.net index files for the simulators' synthetic sky.

The CCD simulator draws its stars from our synthetic ``gsc`` (indisync/sim/bin/gsc), not the real
sky, so no published index can solve its frames. This module asks the same ``gsc`` for the stars
around a sky cell, writes them as a FITS table (RA, DEC, MAG) and runs ``build-astrometry-index``
for each scale preset. The result is cached per cell (and per version of the catalogue script), so
the first solve near a pointing pays ~2 s and later ones nothing.

Cells are CELL_DEG tall Dec bands cut into RA cells about CELL_DEG wide on the sky. A cell's index
holds every star within the cell's half-diagonal plus MARGIN_DEG of its centre, so any field of up
to MARGIN_DEG radius pointed anywhere inside the cell is covered.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .indi import GSC_SOURCE

CELL_DEG = 1.5
MARGIN_DEG = 0.6  # a 60' field (diagonal 85') pointed at the cell's edge still lies inside
MAG_LIMIT = 17.0  # the CCD simulator's SIM_LIMITINGMAG default: fainter stars are not drawn
# build-astrometry-index -P presets: quads of 11'-16' (5) up to 32'-45' (8), which serve fields of
# about 20' to 90' (the simulator's 1280x1024 at 1.19"/px is 25' x 20').
PRESETS = (5, 6, 7, 8)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "indisync" / "sim-astrometry-index"


def cell_of(ra: float, dec: float) -> tuple[int, int]:
    """(ra index, dec index) of the cell holding (ra, dec), degrees J2000."""
    idec = min(int((dec + 90.0) // CELL_DEG), int(180 / CELL_DEG) - 1)
    n_ra = _ra_cells(idec)
    ira = int((ra % 360.0) / (360.0 / n_ra)) % n_ra
    return ira, idec


def _ra_cells(idec: int) -> int:
    dec_mid = -90.0 + (idec + 0.5) * CELL_DEG
    return max(1, int(360.0 * math.cos(math.radians(dec_mid)) // CELL_DEG))


def cell_centre(ira: int, idec: int) -> tuple[float, float]:
    n_ra = _ra_cells(idec)
    return (ira + 0.5) * 360.0 / n_ra, -90.0 + (idec + 0.5) * CELL_DEG


def _catalogue_version(gsc: Path) -> str:
    return hashlib.sha256(gsc.read_bytes()).hexdigest()[:12]


def ensure_index(ra: float, dec: float, cache_dir: str | os.PathLike | None = None,
                 gsc: Path = GSC_SOURCE, timeout: float = 120.0) -> Path:
    """The directory of index files covering (ra, dec), built now if not cached. Put it in
    ``acquire.index_dirs``."""
    ira, idec = cell_of(ra, dec)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"{_catalogue_version(gsc)}-cell-{idec:03d}-{ira:03d}"
    if all((target / f"index-sim-{p:02d}.fits").exists() for p in PRESETS):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        _build(build, cell_centre(ira, idec), gsc, (idec * 1000 + ira) * 10, timeout)
        try:
            os.rename(build, target)  # atomic: a reader sees a whole cell or none
        except OSError:
            if not target.exists():  # another process may have finished the same cell first
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def _build(out: Path, centre: tuple[float, float], gsc: Path, id_base: int, timeout: float) -> None:
    import numpy as np
    from astropy.io import fits

    # A cell's corner is at most ~0.75 CELL_DEG from its centre (RA cells are up to ~6% wider than tall).
    radius_arcmin = (0.8 * CELL_DEG + MARGIN_DEG) * 60.0
    done = subprocess.run(
        [sys.executable, str(gsc), "-c", f"{centre[0]:.6f}", f"{centre[1]:.6f}", "-r", f"{radius_arcmin:.1f}",
         "-m", "0", f"{MAG_LIMIT:g}", "-n", "1000000"],
        capture_output=True, text=True, timeout=timeout, check=True,
    )
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    ra = np.array([float(r[1]) for r in rows])
    dec = np.array([float(r[2]) for r in rows])
    mag = np.array([float(r[4]) for r in rows], dtype=np.float32)
    catalogue = out / "catalogue.fits"
    fits.BinTableHDU.from_columns([
        fits.Column(name="RA", format="D", array=ra),
        fits.Column(name="DEC", format="D", array=dec),
        fits.Column(name="MAG", format="E", array=mag),
    ]).writeto(catalogue)
    for p in PRESETS:
        subprocess.run(
            ["build-astrometry-index", "-i", str(catalogue), "-o", str(out / f"index-sim-{p:02d}.fits"),
             "-P", str(p), "-S", "MAG", "-E", "-I", str(id_base + p), "-t", str(out)],
            capture_output=True, timeout=timeout, check=True,
        )
    catalogue.unlink()
