"""The centring loop, driven by a scripted sky: a mount whose field is off by a fixed pointing error."""

import threading

import pytest
from astropy.io import fits

from indisync.acquire.centering import Target, center
from indisync.acquire.geometry import apply_offset, tangent_offset
from indisync.acquire.settings import AcquireSettings
from indisync.acquire.solver import Solution
from indisync.errors import ActionCancelled, NoIndexError, NoStarsError

TARGET = Target(83.82, -5.39)


class ScriptedSky:
    """Where the camera really looks = the mount's commanded position + a pointing error, unless
    the mount has been synced (then its model absorbs the error, as a real mount's does)."""

    def __init__(self, error_east=150.0, error_north=-80.0):
        self.error = (error_east, error_north)
        self.commanded = None
        self.sync_correction = (0.0, 0.0)
        self.slews, self.syncs = [], []
        self.focal_length_mm = 900.0

    # mount
    def slew_j2000(self, ra, dec, timeout, cancel=None):
        self.slews.append((ra, dec))
        self.commanded = (ra, dec)

    def sync_j2000(self, ra, dec):
        self.syncs.append((ra, dec))
        e, n = tangent_offset(self.commanded[0], self.commanded[1], ra, dec)
        ce, cn = self.sync_correction
        self.sync_correction = (ce - e, cn - n)

    def looking_at(self):
        e = self.error[0] + self.sync_correction[0]
        n = self.error[1] + self.sync_correction[1]
        return apply_offset(*self.commanded, e, n)

    # camera
    def expose(self, seconds, binning=1):
        hdu = fits.PrimaryHDU()
        hdu.header.update(NAXIS1=1280, NAXIS2=1024, PIXSIZE1=5.2, XBINNING=binning)
        return hdu


def solver_for(sky, failures=()):
    calls = []

    def solve(hdu, hints, settings, cancel):
        calls.append(hints)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        ra, dec = sky.looking_at()
        return Solution(ra, dec, -90.0, 1.19, 1, 25.4, 20.3, 1280, 1024, 500, "index-sim-06.fits", 1.5)
    solve.calls = calls
    return solve


def settings(**kw):
    return AcquireSettings(settle=0, **kw)


def test_offset_correction_centres_in_two_attempts_and_reports_each():
    sky = ScriptedSky()
    seen = []
    solve = solver_for(sky)
    result = center(sky, sky, TARGET, settings(), on_attempt=seen.append, solve=solve)
    assert result.centered and len(result.attempts) == 2 and seen == result.attempts
    first, second = result.attempts
    assert first.offset_arcsec == pytest.approx((150 ** 2 + 80 ** 2) ** 0.5, rel=1e-3)
    assert first.offset_east_arcsec == pytest.approx(-150, abs=0.5) and first.offset_north_arcsec == pytest.approx(80, abs=0.5)
    assert second.offset_arcsec < 1.0 and result.final_offset_arcsec == second.offset_arcsec
    assert sky.syncs == []
    # the second goto is aimed away from the target by the error; hints carry the scale and the aim
    e, n = tangent_offset(TARGET.ra, TARGET.dec, *sky.slews[1])
    assert e == pytest.approx(-150, abs=0.5) and n == pytest.approx(80, abs=0.5)
    assert solve.calls[0].scale_arcsec == pytest.approx(206.2648 * 5.2 / 900, rel=1e-6)
    assert (solve.calls[1].ra, solve.calls[1].dec) == sky.slews[1]


def test_sync_correction_syncs_then_slews_to_the_target_again():
    sky = ScriptedSky()
    result = center(sky, sky, TARGET, settings(correction="sync"), solve=solver_for(sky))
    assert result.centered and len(result.attempts) == 2
    assert len(sky.syncs) == 1 and sky.slews[1] == (TARGET.ra, TARGET.dec)


def test_failed_solves_use_attempts_and_the_reason_says_why():
    sky = ScriptedSky()
    stars = NoStarsError("only 2 star(s) found")
    result = center(sky, sky, TARGET, settings(attempts=3), solve=solver_for(sky, failures=(stars,) * 3))
    assert not result.centered and len(result.attempts) == 3
    assert "no frame solved in 3 attempt(s)" in result.reason and "only 2 star(s)" in result.reason
    # one failure, then it recovers
    sky = ScriptedSky()
    result = center(sky, sky, TARGET, settings(attempts=4), solve=solver_for(sky, failures=(stars,)))
    assert result.centered and len(result.attempts) == 3
    assert result.attempts[0].error and result.attempts[0].offset_arcsec is None


def test_no_index_ends_centring_at_once():
    sky = ScriptedSky()
    result = center(sky, sky, TARGET, settings(),
                    solve=solver_for(sky, failures=(NoIndexError("install astrometry-data-tycho2-07"),)))
    assert not result.centered and len(result.attempts) == 1 and "tycho2-07" in result.reason


def test_gives_up_after_the_attempts_with_the_remaining_error():
    sky = ScriptedSky()

    class Sloppy(ScriptedSky):  # the pointing error changes after every slew: never converges
        def slew_j2000(self, ra, dec, timeout, cancel=None):
            super().slew_j2000(ra, dec, timeout, cancel)
            self.error = (self.error[0] + 60.0, self.error[1])

    sky = Sloppy()
    result = center(sky, sky, TARGET, settings(attempts=3), solve=solver_for(sky))
    assert not result.centered and len(result.attempts) == 3 and len(sky.slews) == 3
    assert "still" in result.reason and "after 3 attempt(s)" in result.reason
    assert result.final_offset_arcsec == pytest.approx(60.0, abs=1)


def test_cancel_stops_between_attempts_and_a_bad_listener_does_not_stop_centring():
    sky = ScriptedSky()
    cancel = threading.Event()
    cancel.set()
    result = center(sky, sky, TARGET, settings(), cancel=cancel, solve=solver_for(sky))
    assert not result.centered and result.reason == "cancelled" and sky.slews == []

    def broken(_):
        raise RuntimeError("listener bug")
    sky = ScriptedSky()
    result = center(sky, sky, TARGET, settings(), on_attempt=broken, solve=solver_for(sky))
    assert result.centered


def test_cancel_reaches_the_slew_and_a_cancelled_slew_ends_centring_as_cancelled():
    cancel = threading.Event()

    class CancelledMidSlew(ScriptedSky):  # the night leaves centring while the mount slews
        def slew_j2000(self, ra, dec, timeout, cancel=None):
            self.given = cancel
            super().slew_j2000(ra, dec, timeout, cancel)
            cancel.set()
            raise ActionCancelled("Telescope Simulator: slew cancelled; motion aborted")

    sky = CancelledMidSlew()
    result = center(sky, sky, TARGET, settings(), cancel=cancel, solve=solver_for(sky))
    assert sky.given is cancel
    assert not result.centered and result.reason == "cancelled" and len(sky.slews) == 1


def test_sync_that_changes_nothing_suggests_offset_correction():
    class IgnoresSyncs(ScriptedSky):
        def sync_j2000(self, ra, dec):
            self.syncs.append((ra, dec))

    sky = IgnoresSyncs()
    result = center(sky, sky, TARGET, settings(correction="sync", attempts=3), solve=solver_for(sky))
    assert not result.centered and len(sky.syncs) == 2
    assert "try acquire.correction: offset" in result.reason
