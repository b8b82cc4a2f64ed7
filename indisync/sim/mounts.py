"""Simulated-mount helpers shared by the guiding tests, the guiding benchmark and the rig."""

from __future__ import annotations

import time

from .indi import set_number, set_switch

SIDEREAL_ARCSEC_PER_S = 15.041067


class DroppedPulses:
    """The real mount's coordinates, but its guide pulses go nowhere: the unguided baseline runs
    through the very same guide loop, with the same timing."""

    def __init__(self, mount):
        self.mount = mount

    @property
    def coordinates(self):
        return self.mount.coordinates

    def pulse_guide(self, direction: str, ms: int) -> None:
        time.sleep(ms / 1000.0)


def set_tracking_error(host: str, port: int, ra_arcsec_per_s: float, dec_arcsec_per_s: float,
                       device: str = "Telescope Simulator") -> None:
    """Make the simulated mount track at sidereal + an error, so stars drift for a guider to fix."""
    set_switch(host, port, device, "TELESCOPE_TRACK_MODE", {"TRACK_CUSTOM": True})
    set_number(host, port, device, "TELESCOPE_TRACK_RATE",
               {"TRACK_RATE_RA": SIDEREAL_ARCSEC_PER_S + ra_arcsec_per_s, "TRACK_RATE_DE": dec_arcsec_per_s})
