"""Which astrometry.net index files are installed, which scales they cover, and which Debian
package covers a field that nothing installed does.

An index file's quads are SCALE_L..SCALE_U (radians, in its primary header) across. astrometry.net
uses an index for a field whose quads fit in about 10 %..100 % of the field's width, so a field
W arcmin wide is served by any index whose quad range meets [0.1 W, W].
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/astrometry.cfg")
QUAD_FRACTION_LOW = 0.1  # astrometry.net's default quad_size_fraction_lo

# Debian's astrometry-data-* packages (`apt-cache show`): quad size range in arcmin.
# astrometry-data-tycho2 is the metapackage of all of them.
DEBIAN_PACKAGES: tuple[tuple[str, float, float], ...] = (
    ("astrometry-data-tycho2-07", 22.0, 30.0),
    ("astrometry-data-tycho2-08", 30.0, 44.0),
    ("astrometry-data-tycho2-09", 44.0, 60.0),
    ("astrometry-data-tycho2-10-19", 60.0, 2000.0),
)
NARROW_FIELD_HINT = (
    "Debian packages no index for quads under 22': download the 2MASS-based index-4200 series "
    "(index-42xx for your field) from http://data.astrometry.net/ into a directory listed in "
    "acquire.index_dirs"
)


@dataclass(frozen=True)
class IndexFile:
    path: Path
    scale_low_arcmin: float | None  # None: not readable from the header (e.g. a compressed file)
    scale_high_arcmin: float | None

    def serves(self, field_arcmin: float) -> bool:
        if self.scale_low_arcmin is None or self.scale_high_arcmin is None:
            return True  # cannot tell: let astrometry.net decide rather than refuse a usable file
        return self.scale_low_arcmin <= field_arcmin and self.scale_high_arcmin >= QUAD_FRACTION_LOW * field_arcmin


def packages_for_field(field_arcmin: float) -> list[str]:
    """The Debian packages whose index files would solve a field ``field_arcmin`` wide."""
    low = QUAD_FRACTION_LOW * field_arcmin
    return [name for name, lo, hi in DEBIAN_PACKAGES if lo <= field_arcmin and hi >= low]


def install_hint(field_arcmin: float) -> str:
    packages = packages_for_field(field_arcmin)
    if not packages:
        return NARROW_FIELD_HINT
    return f"install {' or '.join(packages)} (sudo apt-get install {packages[0]})"


def index_dirs(configured: list[str], config_file: Path = DEFAULT_CONFIG) -> list[Path]:
    """The directories astrometry.net will search: ours when configured, else its config's add_path."""
    if configured:
        return [Path(d).expanduser() for d in configured]
    dirs = []
    try:
        for line in config_file.read_text().splitlines():
            m = re.match(r"\s*add_path\s+(\S+)", line)
            if m:
                dirs.append(Path(m.group(1)))
    except OSError:
        dirs.append(Path("/usr/share/astrometry"))
    return dirs


def _header_scale(path: Path) -> tuple[float, float] | None:
    """SCALE_L/SCALE_U of an index file, read from the raw FITS header (no astropy needed)."""
    values = {}
    try:
        with open(path, "rb") as fh:
            for _ in range(36):  # a few header blocks is plenty
                block = fh.read(2880)
                if len(block) < 2880:
                    break
                for i in range(0, 2880, 80):
                    card = block[i:i + 80].decode("ascii", "replace")
                    key = card[:8].strip()
                    if key in ("SCALE_L", "SCALE_U") and card[8:10] == "= ":
                        values[key] = float(card[10:].split("/")[0])
                    elif key == "END":
                        break
                else:
                    continue
                break
    except (OSError, ValueError):
        return None
    if "SCALE_L" not in values or "SCALE_U" not in values:
        return None
    to_arcmin = 180 / math.pi * 60
    return values["SCALE_L"] * to_arcmin, values["SCALE_U"] * to_arcmin


def find_indexes(dirs: list[Path]) -> list[IndexFile]:
    found = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.fits")) + sorted(d.glob("*.fits.fz")):
            scale = _header_scale(path)
            if scale is not None:
                found.append(IndexFile(path, *scale))
            elif path.name.startswith("index-"):  # by its name an index, by its header unknown
                found.append(IndexFile(path, None, None))
    return found
