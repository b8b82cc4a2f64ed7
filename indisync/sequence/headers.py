"""The FITS header keywords every frame carries, beyond what the camera driver writes.

The camera layer already writes EXPTIME, DATE-OBS, INSTRUME, XBINNING, YBINNING and IMAGETYP;
``apply_frame_header`` adds OBJECT, FILTER, FOCUSPOS, FOCTEMP (when known) and ours: NODE, BATCH,
SEQINDEX, EXPOSID, HFR and NSTARS when measured, and CLKOFFS (this node's clock minus the
master's, s, protocol/clock.py; 0 on the master) once measured. Values that are unknown are left out rather
than written as placeholders, so a reader can tell "not measured" from a value.
"""

from __future__ import annotations

from typing import Any, MutableMapping

# MaxIm DL's IMAGETYP values, which stacking tools (PixInsight, Siril, DSS) recognise.
IMAGETYP = {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Field", "bias": "Bias Frame"}


def frame_header_cards(
    *,
    node: str,
    target: str | None,
    frame_type: str,
    filter_name: str | None,
    batch: int | None,
    seq_index: int | None,
    exposure_id: int | None,
    focus_position: int | None = None,
    focus_temperature: float | None = None,
    hfr: float | None = None,
    stars: int | None = None,
    clock_offset: float | None = None,
) -> list[tuple[str, Any, str]]:
    """(keyword, value, comment) for each known value, in a stable order."""
    cards: list[tuple[str, Any, str]] = [
        ("IMAGETYP", IMAGETYP.get(frame_type, frame_type), "type of frame"),
        ("OBJECT", target, "target name"),
        ("FILTER", filter_name, "filter name"),
        ("FOCUSPOS", focus_position, "[step] focuser position"),
        ("FOCTEMP", focus_temperature, "[degC] focuser temperature"),
        ("NODE", node, "indisync node that took this frame"),
        ("BATCH", batch, "indisync batch number (1-based)"),
        ("SEQINDEX", seq_index, "indisync frame index within the batch (1-based)"),
        ("EXPOSID", exposure_id, "indisync master exposure id"),
        ("HFR", None if hfr is None else round(float(hfr), 3), "[px] half-flux radius, median of stars"),
        ("NSTARS", stars, "stars measured for HFR"),
        ("CLKOFFS", None if clock_offset is None else round(float(clock_offset), 4),
         "[s] this clock minus master's; true = DATE-OBS - CLKOFFS"),
    ]
    return [(k, v, c) for k, v, c in cards if v is not None]


def apply_frame_header(header: MutableMapping[str, Any], **fields: Any) -> None:
    """Set ``frame_header_cards(**fields)`` on an astropy Header (or any mapping)."""
    for keyword, value, comment in frame_header_cards(**fields):
        header[keyword] = (value, comment)
