"""The meridian flip: the ``flip:`` config section, sidereal time, the target's hour angle, and
the one decision the night machine asks between frames: go on, flip now, or hold for the flip.

    flip: {after_meridian_min: 5, max_wait_min: 30, recalibrate: false}

A German equatorial mount tracking a target east of the meridian has its tube on the pier's WEST
side (INDI's TELESCOPE_PIER_SIDE = PIER_WEST); past the meridian the tube would run into the pier,
so the mount is slewed to the same target again and comes down on the EAST side. The flip happens
between frames only: once the hour angle is ``after_meridian_min`` past the meridian the next frame
waits for the flip; before that, a frame that would end more than ``after_meridian_min +
max_wait_min`` past the meridian is not started (the night holds until the flip is possible).

Pure: no astropy (the sidereal time is Meeus' GMST formula, good to ~0.1 s; UT1 is taken as UTC,
which is within 0.9 s, and the equation of the equinoxes, at most ~1.2 s, is left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..configtypes import ConfigValueError

SIDEREAL_RATE = 1.002737909350795  # sidereal seconds (hour-angle seconds) per SI second
UNIX_EPOCH_JD = 2440587.5
J2000_JD = 2451545.0
PRE_FLIP_SIDE = "west"  # INDI: pointing east of the meridian the tube is on the pier's west side
POST_FLIP_SIDE = "east"


@dataclass
class FlipSettings:
    after_meridian_min: float = 5.0  # minutes of hour angle past the meridian before the flip
    max_wait_min: float = 30.0  # no frame may end later than after_meridian_min + this past the meridian
    recalibrate: bool = False  # after the flip: calibrate the guider afresh instead of mirroring it

    def validate(self) -> None:
        if not 0 <= self.after_meridian_min <= 120:
            raise ConfigValueError("after_meridian_min", f"got {self.after_meridian_min}; allowed: 0..120 minutes "
                                                         "past the meridian")
        if not 0 <= self.max_wait_min <= 600:
            raise ConfigValueError("max_wait_min", f"got {self.max_wait_min}; allowed: 0..600 minutes")

    @property
    def limit_min(self) -> float:
        """Minutes past the meridian by which every frame before the flip must have ended."""
        return self.after_meridian_min + self.max_wait_min


def julian_date(epoch: float) -> float:
    return epoch / 86400.0 + UNIX_EPOCH_JD


def gmst_deg(epoch: float) -> float:
    """Greenwich mean sidereal time in degrees (0..360) at ``epoch`` (Unix seconds, UTC ~ UT1).
    Meeus, Astronomical Algorithms, eq. 12.4 (IAU 1982)."""
    jd = julian_date(epoch)
    t = (jd - J2000_JD) / 36525.0
    theta = 280.46061837 + 360.98564736629 * (jd - J2000_JD) + 0.000387933 * t * t - t * t * t / 38710000.0
    return theta % 360.0


def local_sidereal_deg(longitude_east_deg: float, epoch: float) -> float:
    return (gmst_deg(epoch) + longitude_east_deg) % 360.0


def hour_angle_hours(ra_deg: float, longitude_east_deg: float, when_epoch: float) -> float:
    """The hour angle (hours, -12..12; negative = east of the meridian) of right ascension ``ra_deg``
    (of the equinox of date, as a mount's EQUATORIAL_EOD_COORD) seen from ``longitude_east_deg``."""
    ha = (local_sidereal_deg(longitude_east_deg, when_epoch) - ra_deg) / 15.0
    return (ha + 12.0) % 24.0 - 12.0


def hour_angle_at(ha_hours: float, ha_epoch: float, now: float) -> float:
    """An hour angle measured at ``ha_epoch`` carried on to ``now`` at the sidereal rate."""
    ha = ha_hours + (now - ha_epoch) * SIDEREAL_RATE / 3600.0
    return (ha + 12.0) % 24.0 - 12.0


def seconds_until_hour_angle(ha_now_hours: float, ha_wanted_hours: float) -> float:
    """Wall-clock seconds until the hour angle reaches ``ha_wanted_hours`` (0 when already past)."""
    return max(0.0, (ha_wanted_hours - ha_now_hours) * 3600.0 / SIDEREAL_RATE)


def flip_decision(ha_hours_now: float, pier_side: str | None, next_frame_s: float, settings: FlipSettings) -> str:
    """Between frames: "go" (start the next frame), "flip" (flip now) or "wait" (hold every node
    until the flip is possible, then flip).

    Only a mount still on the pre-flip side (``west``, or not saying: then the flip's check of the
    pier side tells) flips; on the east side nothing is due. A target far east of the meridian
    (hour angle < -6 h) needs no flip tonight.
    """
    if pier_side == POST_FLIP_SIDE or not math.isfinite(ha_hours_now) or ha_hours_now < -6.0:
        return "go"
    ha_min = ha_hours_now * 60.0
    if ha_min >= settings.after_meridian_min:
        return "flip"
    end_min = ha_min + max(0.0, next_frame_s) * SIDEREAL_RATE / 60.0
    if end_min > settings.limit_min:
        return "wait"
    return "go"
