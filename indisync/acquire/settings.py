"""The ``acquire:`` config section: plate solving and centring.

Example (all keys optional; these are the defaults)::

    acquire:
      focal_length_mm: null    # null: the mount's TELESCOPE_INFO, then the frame's FOCALLEN
      pixel_size_um: null      # null: the camera's CCD_INFO, then the frame's PIXSIZE1
      exposure: 5.0            # s per solve frame
      binning: 1
      solve_timeout: 60        # s; astrometry.net is killed (its whole process group) after this
      scale_tolerance_pct: 15  # scale hint: the expected arcsec/px +- this much
      search_radius_deg: 5.0   # position hint: only indexes within this of the mount's position; null: whole sky
      downsample: 2            # astrometry.net's --downsample (star extraction on a smaller image)
      index_dirs: []           # directories of index files; empty: astrometry.net's own /etc/astrometry.cfg
      tolerance_arcsec: 10     # centred when the solved centre is this close to the target
      attempts: 4              # slew-solve-correct rounds before centring gives up
      correction: offset       # offset: re-aim the goto by the measured error; sync: sync the mount, re-slew
      on_failure: continue     # what the night does when centring fails: continue (image off-centre) | stop
      settle: 1.0              # s to wait after a slew (or a rotator move) ends before the solve frame starts
      slew_timeout: 180        # s for one goto to end (Ok) before it is aborted
      min_overlap_pct: 80      # co-alignment: warn when an OTA's field overlaps the master's less
      pa_tolerance_deg: 1.0    # rotators (indi.rotator): turned when the solved PA is farther than this from the target's
      rotate_attempts: 3       # rotator moves (each checked by a new solve) before rotating gives up
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError


@dataclass
class AcquireSettings:
    # The config value wins over TELESCOPE_INFO: on a multi-OTA rig the mount's TELESCOPE_INFO
    # describes one telescope at most, and a reducer changes the focal length without telling INDI.
    focal_length_mm: float | None = None
    pixel_size_um: float | None = None
    exposure: float = 5.0
    binning: int = 1
    solve_timeout: float = 60.0
    scale_tolerance_pct: float = 15.0
    search_radius_deg: float | None = 5.0
    downsample: int = 2
    index_dirs: list[str] = field(default_factory=list)
    tolerance_arcsec: float = 10.0
    attempts: int = 4
    # offset re-aims the goto and works on every mount (also those that cannot sync, and ones whose
    # pointing model a sync would disturb); sync moves the mount's idea of where it points.
    correction: Literal["offset", "sync"] = "offset"
    # An unattended night loses less imaging a slightly off-centre target than nothing at all.
    on_failure: Literal["continue", "stop"] = "continue"
    settle: float = 1.0
    slew_timeout: float = 180.0
    min_overlap_pct: float = 80.0
    min_stars: int = 10  # fewer sources than this in a frame: "no stars" rather than "no solution"
    # A target's position angle (degrees E of N): an OTA with a rotator turns until its solved PA is
    # this close, in at most rotate_attempts moves (indisync.acquire.rotation).
    pa_tolerance_deg: float = 1.0
    rotate_attempts: int = 3

    def validate(self) -> None:
        for key in ("exposure", "solve_timeout", "tolerance_arcsec", "slew_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: a positive number")
        for key in ("focal_length_mm", "pixel_size_um", "search_radius_deg"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigValueError(key, f"got {value}; allowed: a positive number or null")
        if not 1 <= self.binning <= 16:
            raise ConfigValueError("binning", f"got {self.binning}; allowed: 1..16")
        if not 1 <= self.downsample <= 16:
            raise ConfigValueError("downsample", f"got {self.downsample}; allowed: 1..16")
        if not 0 < self.scale_tolerance_pct < 100:
            raise ConfigValueError("scale_tolerance_pct", f"got {self.scale_tolerance_pct}; allowed: 0 < x < 100")
        if not 1 <= self.attempts <= 20:
            raise ConfigValueError("attempts", f"got {self.attempts}; allowed: 1..20")
        if self.settle < 0:
            raise ConfigValueError("settle", f"got {self.settle}; allowed: 0 or more seconds")
        if not 0 <= self.min_overlap_pct <= 100:
            raise ConfigValueError("min_overlap_pct", f"got {self.min_overlap_pct}; allowed: 0..100")
        if self.min_stars < 1:
            raise ConfigValueError("min_stars", f"got {self.min_stars}; allowed: 1 or more")
        if not 0 < self.pa_tolerance_deg <= 45:
            raise ConfigValueError("pa_tolerance_deg", f"got {self.pa_tolerance_deg}; allowed: 0 < x <= 45 (degrees)")
        if not 1 <= self.rotate_attempts <= 20:
            raise ConfigValueError("rotate_attempts", f"got {self.rotate_attempts}; allowed: 1..20")
