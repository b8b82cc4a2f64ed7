"""Calibration files and their headers.

``{storage}/calib/{node}/{YYYY-MM-DD}/FLAT_{filter}_{bin}_{exp}s_{n:04d}.fits`` (DARK_{bin}_{exp}s,
BIAS_{bin}_0s likewise), the date the night's (the date at dusk), every field sanitised as frame
names are (indisync.sequence.naming), written atomically and never over an existing file.

Headers as WBPP (PixInsight) and Siril read them: IMAGETYP 'Flat Field' | 'Dark Frame' | 'Bias
Frame'; FRAME as INDI writes it ('Flat' | 'Dark' | 'Bias'); FILTER, XBINNING/YBINNING, EXPTIME,
EXPOSURE, CCD-TEMP, SET-TEMP, GAIN, OFFSET, ROTATANG. The driver's INSTRUME, TELESCOP, OBSERVAT are
left as they are. Stdlib only: the header is whatever mapping-like object the caller passes (an
astropy Header), the HDU whatever has ``writeto``.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from ..record.nightlog import night_of
from ..sequence.naming import format_seconds, sanitize_field, unsafe_name_reason, write_fits_atomically

KINDS = ("flat", "dark", "bias")
IMAGETYP = {"flat": "Flat Field", "dark": "Dark Frame", "bias": "Bias Frame"}
FRAME = {"flat": "Flat", "dark": "Dark", "bias": "Bias"}  # INDI's FRAME words


def _kind(kind: str) -> str:
    kind = str(kind).lower()
    if kind not in KINDS:
        raise ValueError(f"a calibration frame is a flat, dark or bias, not {kind!r}")
    return kind


def calib_dir(storage_dir, node: str, night: date) -> Path:
    """``{storage}/calib/{node}/{YYYY-MM-DD}`` (the node's name sanitised)."""
    name = sanitize_field(node) or "node"
    return Path(storage_dir) / "calib" / name / night.isoformat()


def night_date(now: float, zone: tzinfo | None = None, starts_hour: int = 12) -> date:
    """The night ``now`` (epoch s) belongs to: the date at dusk on ``zone``'s clock (None: this computer's)."""
    return night_of(datetime.fromtimestamp(now, timezone.utc), starts_hour, zone)


def calib_stem(kind: str, filter: str | None, binning: int, exposure: float) -> str:
    """'FLAT_R_1_1.25s', 'DARK_1_300s', 'BIAS_1_0s' (a flat without a filter: 'FLAT_none_1_2s')."""
    kind = _kind(kind)
    exp = f"{format_seconds(0.0 if kind == 'bias' else round(float(exposure), 6))}s"
    if kind == "flat":
        return f"FLAT_{sanitize_field(filter) or 'none'}_{int(binning)}_{exp}"
    return f"{kind.upper()}_{int(binning)}_{exp}"


def _numbered(stem: str) -> re.Pattern:
    return re.compile(re.escape(stem) + r"_(\d+)\.fits$")


def next_number(directory: Path, stem: str) -> int:
    """One more than the highest ``{stem}_{n}.fits`` in ``directory`` (1 when none)."""
    pattern = _numbered(stem)
    highest = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 1
    for name in names:
        match = pattern.match(name)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def save_calib_frame(directory: Path, stem: str, hdu) -> Path:
    """Write ``hdu`` as ``{directory}/{stem}_{n:04d}.fits``, n the next free number; atomic, never
    over an existing file (another writer taking the name: the next number). Returns the path."""
    reason = unsafe_name_reason(stem)
    if reason:
        raise ValueError(f"calibration file name {stem!r} {reason}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = next_number(directory, stem)
    for _ in range(1000):
        path = directory / f"{stem}_{n:04d}.fits"
        if not os.path.lexists(path):
            try:
                return write_fits_atomically(path, hdu)
            except FileExistsError:
                pass
        n += 1
    raise FileExistsError(f"no free file name for {stem} in {directory} after 1000 tries")


def _set(header, key: str, value: Any, comment: str) -> None:
    if value is None:
        return
    header[key] = (value, comment)


def apply_calib_header(header, kind: str, filter, binning: int, exposure: float, ccd_temp, set_temp, gain,
                       offset, node: str, rotator_angle=None, mode=None, adu=None) -> None:
    """Stamp a calibration frame's header (an astropy Header or any mapping taking (value, comment)).
    None values leave the key as the driver wrote it."""
    kind = _kind(kind)
    exposure = 0.0 if exposure is None else float(exposure)
    _set(header, "IMAGETYP", IMAGETYP[kind], "type of image (WBPP, Siril)")
    _set(header, "FRAME", FRAME[kind], "frame type (INDI)")
    if kind == "flat":
        _set(header, "FILTER", filter, "filter")
    _set(header, "XBINNING", int(binning), "binning factor, x")
    _set(header, "YBINNING", int(binning), "binning factor, y")
    _set(header, "EXPTIME", exposure, "[s] exposure time")
    _set(header, "EXPOSURE", exposure, "[s] exposure time")
    _set(header, "CCD-TEMP", None if ccd_temp is None else round(float(ccd_temp), 2), "[C] sensor temperature")
    _set(header, "SET-TEMP", None if set_temp is None else float(set_temp), "[C] cooler setpoint")
    _set(header, "GAIN", None if gain is None else float(gain), "camera gain")
    _set(header, "OFFSET", None if offset is None else float(offset), "camera offset")
    _set(header, "ROTATANG", None if rotator_angle is None else float(rotator_angle), "[deg] rotator angle")
    _set(header, "CALNODE", sanitize_field(node) or None, "indisync node that took it")
    _set(header, "CALMODE", mode, "flats: sky or panel")
    _set(header, "CALADU", None if adu is None else round(float(adu), 1), "[ADU] mean of the frame")
