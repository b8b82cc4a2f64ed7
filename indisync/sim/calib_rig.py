"""What the calibration tests and benchmarks/flats.py need around a SimRig (tests and benchmarks only):
a night log of earlier nights' lights (so the night record asks for flats), a rig at dusk with the
simulated twilight sky, and the calibration frames read back from disk, never through the code under
test (astropy reads the files; the mean ADU is the whole frame's, as the nodes measure it)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .calib_coupling import Twilight, longitude_for_sun
from .night import LATITUDE, target_east_high
from .rig import SimRig

FULL_SCALE = 65535.0  # the CCD Simulator's 16 bits (CCD_INFO.CCD_BITSPERPIXEL)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed_lights(directory: Path, lights: dict[str, list[str]], exposure: float = 300.0, frames: int = 3,
                days_ago: float = 2.0, set_temperature: float | None = None, binning: int = 1,
                now: float | None = None) -> Path:
    """A night log ``days_ago`` days back in ``directory`` (the master's record directory) with
    ``frames`` ok light frames of ``exposure`` s per node and filter (``lights``: node -> filters), as
    the recorder would have written their exposure_done events. Returns the file."""
    import time

    now = time.time() if now is None else now
    t = now - days_ago * 86400.0
    path = Path(directory) / f"{datetime.fromtimestamp(t, timezone.utc).date().isoformat()}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    n = 0
    for node, filters in lights.items():
        for name in filters:
            for _ in range(frames):
                n += 1
                start = t + n * (exposure + 5.0)
                payload = {"exposure_id": f"seed{n:04d}", "status": "ok", "filter": name,
                           "file": f"SEED_{name}_{n:04d}.fits", "start": _iso(start), "duration": exposure,
                           "frame_type": "light", "binning": binning}
                if set_temperature is not None:
                    payload["set_temperature"] = set_temperature
                lines.append({"rx": _iso(start + exposure + 1.0), "node": node, "kind": "event",
                              "type": "exposure_done", "ts": _iso(start + exposure + 1.0), "payload": payload})
    with path.open("a") as f:
        for entry in lines:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return path


@dataclass
class CalibFrame:
    path: Path
    kind: str  # FLAT | DARK | BIAS (the file name's first field)
    filter: str | None
    exposure: float
    mean: float  # ADU, the whole frame
    imagetyp: str
    ccd_temp: float | None
    set_temp: float | None
    binning: int | None


def calib_frames(rig: SimRig, node: str, kind: str = "FLAT") -> list[CalibFrame]:
    """A node's calibration frames of ``kind`` under {storage}/calib/{node}/, read back with astropy."""
    import numpy as np
    from astropy.io import fits

    out = []
    for path in sorted((rig.images / node / "calib").rglob(f"{kind}_*.fits")):
        with fits.open(path) as hdul:
            header, data = hdul[0].header, hdul[0].data
            out.append(CalibFrame(path, kind, header.get("FILTER"), float(header.get("EXPTIME", 0.0)),
                                  float(np.mean(data, dtype=np.float64)), str(header.get("IMAGETYP", "")),
                                  header.get("CCD-TEMP"), header.get("SET-TEMP"), header.get("XBINNING")))
    return out


def calib_paths(rig: SimRig, node: str) -> list[Path]:
    return sorted((rig.images / node / "calib").rglob("*.fits"))


def stray_calib_files(rig: SimRig) -> list[Path]:
    """Anything under a calib folder that is neither a finished frame nor the library (a partial or
    temporary file would be)."""
    return [p for p in rig.images.glob("*/calib/**/*") if p.is_file() and not p.name.endswith(".fits")
            and not re.fullmatch(r"library\.db(-wal|-shm|-journal)?", p.name)]


def flats_section(sky: str | None = "dusk", count: int = 5, min_exposure: float = 0.1, max_exposure: float = 3.0,
                  halving_s: float = 180.0, **more) -> dict:
    """A ``flats:`` section for short test runs."""
    return {"sky": sky, "count": count, "min_exposure": min_exposure, "max_exposure": max_exposure,
            "sky_halving_s": halving_s, "cool_timeout": 30, "offset_every_s": 10, **more}


def dusk_rig(workdir: Path, slaves: int = 2, sun_altitude: float = -4.0, m0: float = 43.0, halving_s: float = 180.0,
             flats: dict | None = None, slave_filters: list[str] | None = None, **rig_options) -> tuple[SimRig, float]:
    """A rig at a site where the sun sets through ``sun_altitude`` now (inside the default sky flats'
    -2..-10), its sky a dusk from SIM_SKYGLOW ``m0`` halving every ``halving_s`` from the rig's start,
    the night's target east and high, dusk flats on. Returns (rig, longitude); the caller starts it,
    prepares the mount (indisync.sim.night.prepare_mount) and the nodes."""
    lon = longitude_for_sun(sun_altitude, "dusk", LATITUDE)
    ra, dec = target_east_high(lon)
    flats = flats if flats is not None else flats_section("dusk", halving_s=halving_s)
    night = {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False}
    rig = SimRig(
        slaves=slaves, time_factor=1.0, workdir=workdir, twilight=Twilight.now("dusk", m0, halving_s),
        node_sections={"flats": flats},
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0}, "night": night,
                         "flats": flats},
        master_section={"target": {"name": "DUSK", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 2.0,
                                                "repeat": 50}]},
                        "refocus": {"after_batch": False}},
        slave_section={"filters": slave_filters or ["Green"], "exposure": 2.0},
        **rig_options,
    )
    return rig, lon


def adu_band(target: float = 0.4, tolerance: float = 0.1) -> tuple[float, float]:
    return (target - tolerance) * FULL_SCALE, (target + tolerance) * FULL_SCALE


def night_dir(rig: SimRig) -> Path:
    """The master's night logs ({storage}/nights: the rig sets no record.directory)."""
    return rig.images / "master" / "nights"
