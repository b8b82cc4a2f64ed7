"""The sky's true-error model (indisync.sim.sky.model): each term alone, determinism, pulses, backlash."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indisync.sim.sky.model import PRESETS, SIDEREAL_ARCSEC_PER_S, STEP_S, Sky, SkyParams, play, preset


def _run(sky: Sky, seconds: float, every: float = 0.1):
    out = []
    t = sky.t
    while t < seconds - 1e-9:
        t += every
        sky.advance(t)
        out.append(sky.error())
    return out


def test_periodic_error_has_its_amplitude_and_period_scaled_by_cos_dec():
    sky = Sky(SkyParams(pe_amplitude=8.0, pe_period=480.0), dec=30.0)
    errors = _run(sky, 480.0, every=1.0)
    pe = np.array([e.ra for e in errors])
    assert pe.max() == pytest.approx(8.0 * math.cos(math.radians(30)), rel=0.01)
    assert pe.min() == pytest.approx(-8.0 * math.cos(math.radians(30)), rel=0.01)
    assert all(e.dec == 0 for e in errors)  # PE is RA only
    # one period later it is back where it was
    sky.advance(480.0 + 100.0)
    assert sky.error().pe == pytest.approx(errors[99].pe, abs=1e-6)


def test_harmonics_add_to_the_main_term():
    sky = Sky(SkyParams(pe_amplitude=0.0, pe_period=300.0, pe_h2=2.0, pe_h3=0.0))
    pe = np.array([e.pe for e in _run(sky, 300.0, every=0.5)])
    # two full cycles of the 2nd harmonic in one period: four zero crossings or so, amplitude 2
    assert pe.max() == pytest.approx(2.0, rel=0.01)
    assert np.sum(np.diff(np.sign(pe)) != 0) in (3, 4, 5)


def test_polar_drift_is_linear_and_restarts_at_a_goto():
    sky = Sky(SkyParams(drift_ra=0.6, drift_dec=-1.2))
    sky.advance(60.0)
    e = sky.error()
    assert (e.ra, e.dec) == pytest.approx((0.6, -1.2), abs=1e-6)
    sky.repoint()
    sky.advance(90.0)
    assert (sky.error().drift_ra, sky.error().drift_dec) == pytest.approx((0.3, -0.6), abs=1e-6)


def test_a_west_pulse_moves_ra_by_rate_times_duration_times_cos_dec():
    sky = Sky(SkyParams(), dec=30.0, guide_rate_ra=0.5)
    sky.advance(1.0)
    end = sky.pulse("W", 1000)
    assert end == pytest.approx(2.0)
    sky.advance(0.5 + 1.0)
    assert sky.pulsing("ra")
    sky.advance(3.0)
    assert not sky.pulsing("ra")
    expected = -0.5 * SIDEREAL_ARCSEC_PER_S * 1.0 * math.cos(math.radians(30))
    assert sky.error().ra == pytest.approx(expected, rel=1e-6)
    assert sky.error().guide_ra_axis == pytest.approx(-0.5 * SIDEREAL_ARCSEC_PER_S, rel=1e-6)
    assert sky.error().unguided_ra == pytest.approx(0.0, abs=1e-9)
    sky.pulse("E", 250)
    sky.advance(4.0)
    assert sky.error().ra == pytest.approx(expected * 0.75, rel=1e-6)


def test_a_new_pulse_on_the_same_axis_replaces_the_running_one():
    sky = Sky(SkyParams(), guide_rate_dec=1.0)
    sky.pulse("N", 1000)
    sky.advance(0.2)
    sky.pulse("N", 100)  # INDI: a new TIMED_GUIDE replaces the running one
    sky.advance(2.0)
    assert sky.error().dec == pytest.approx(SIDEREAL_ARCSEC_PER_S * 0.3, rel=1e-6)


def test_dec_backlash_swallows_the_first_arcseconds_after_a_reversal():
    backlash = 6.0
    sky = Sky(SkyParams(backlash_dec=backlash), guide_rate_dec=1.0)
    ms_for = lambda arcsec: arcsec / SIDEREAL_ARCSEC_PER_S * 1000  # noqa: E731
    sky.pulse("N", ms_for(10.0))
    sky.advance(2.0)
    north = sky.error().dec
    assert north == pytest.approx(10.0 - backlash / 2, abs=0.01)  # the play taken up from the middle
    sky.pulse("S", ms_for(4.0))  # less than the play: the axis does not move
    sky.advance(4.0)
    assert sky.error().dec == pytest.approx(north, abs=1e-9)
    assert sky.error().guide_dec_motor == pytest.approx(6.0, abs=0.01)  # but the motor (and the coordinates) did
    sky.pulse("S", ms_for(5.0))
    sky.advance(6.0)
    assert sky.error().dec == pytest.approx(north - (4.0 + 5.0 - backlash), abs=0.01)


def test_play_operator():
    assert play(0.0, 1.0, 4.0) == 0.0
    assert play(0.0, 3.0, 4.0) == 1.0
    assert play(1.0, -3.0, 4.0) == -1.0


def test_seeing_wander_is_stationary_with_its_rms_and_averages_down_over_an_exposure():
    params = SkyParams(wander=0.8, wander_tau=0.2, seed=5)
    sky = Sky(params)
    values = np.array([(e.seeing_ra, e.seeing_dec) for e in _run(sky, 400.0, every=0.05)])
    assert values.std() == pytest.approx(0.8, rel=0.1)
    assert abs(values.mean()) < 0.1
    assert all(e == 0 for e in (sky.error().ra, sky.error().dec))  # seeing is not the mount's error
    # 2 s exposures: the mean of the wander shrinks about as sqrt(2 tau / T)
    means = []
    for _ in range(150):
        x = sky.open_exposure()
        sky.advance(sky.t + 2.0)
        means.append(sky.close_exposure(x).mean_seeing())
    expected = 0.8 * math.sqrt(2 * 0.2 / 2.0)
    assert np.std(np.array(means)) == pytest.approx(expected, rel=0.25)


def test_gusts_come_at_their_rate_and_fall_back_to_zero():
    params = SkyParams(gust_rate=6.0, gust_amplitude=4.0, gust_duration=2.0, seed=3)
    sky = Sky(params)
    errors = _run(sky, 600.0, every=0.05)
    size = np.array([math.hypot(e.gust_ra, e.gust_dec) for e in errors])
    assert size.max() <= 4.0 * 2 + 1e-9  # at most two overlapping at full strength, rarely
    assert size.max() > 2.0
    active = size > 1e-6
    starts = np.sum(active[1:] & ~active[:-1])
    assert 35 <= starts <= 85  # ~60 in ten minutes (overlaps merge a few)
    calm = Sky(replace_gust_rate(params, 0.0))
    assert all(e.gust_ra == 0 and e.gust_dec == 0 for e in _run(calm, 60.0))


def replace_gust_rate(params: SkyParams, rate: float) -> SkyParams:
    from dataclasses import replace

    return replace(params, gust_rate=rate)


def test_the_same_seed_gives_the_same_sky_however_it_is_looked_at_and_whatever_the_pulses():
    a, b, c = (Sky(PRESETS["bad"]) for _ in range(3))
    a.advance(30.0)
    for t in np.arange(0.07, 30.0, 0.37):  # looked at often, at odd times
        b.advance(float(t))
    b.advance(30.0)
    c.advance(10.0)
    c.pulse("W", 500)
    c.pulse("S", 800)
    c.advance(30.0)
    ea, eb, ec = a.error(), b.error(), c.error()
    assert ea == eb
    assert (ec.unguided_ra, ec.unguided_dec) == pytest.approx((ea.ra, ea.dec), abs=1e-9)
    assert (ec.seeing_ra, ec.seeing_dec) == (ea.seeing_ra, ea.seeing_dec)
    other = Sky(preset("bad", seed=2))
    other.advance(30.0)
    assert other.error().seeing_ra != ea.seeing_ra


def test_reset_starts_the_same_sky_again():
    sky = Sky(PRESETS["average"])
    sky.advance(20.0)
    first = sky.error()
    sky.pulse("E", 300)
    sky.advance(40.0)
    sky.reset()
    sky.advance(20.0)
    assert sky.error() == first


def test_the_grid_is_fine_and_time_is_on_it():
    sky = Sky()
    sky.advance(0.015)
    assert sky.t == pytest.approx(STEP_S)


def test_bad_parameters_are_refused_with_the_name():
    with pytest.raises(ValueError, match="pe_period"):
        Sky(SkyParams(pe_period=0))
    with pytest.raises(ValueError, match="wander"):
        SkyParams(wander=-1).validate()
    with pytest.raises(ValueError, match="unknown sky preset 'awful'"):
        preset("awful")


def test_presets_order_good_average_bad():
    g, a, b = PRESETS["good"], PRESETS["average"], PRESETS["bad"]
    assert g.seeing_fwhm == 1.5 and g.pe_amplitude == 8.0 and g.pe_period == 480.0
    assert g.seeing_fwhm < a.seeing_fwhm < b.seeing_fwhm
    assert g.gust_rate == 0 < a.gust_rate < b.gust_rate
