"""The simulated twilight sky's pure parts (indisync.sim.calib_coupling): no server."""

from __future__ import annotations

import math

import pytest

from indisync.sim.calib_coupling import (DARK_PANEL, SkyCoupling, Twilight, flat_rate, has_panel,
                                         longitude_for_sun, skyglow_for_rate)


def test_a_dusk_halves_every_halving_and_a_dawn_doubles():
    dusk = Twilight("dusk", start=1000.0, m0=50.0, halving_s=180.0, duration_s=600.0)
    assert dusk.skyglow(999.0) is None and dusk.skyglow(1601.0) is None
    assert dusk.skyglow(1000.0) == 50.0 and dusk.skyglow(1180.0) == pytest.approx(60.0)
    assert dusk.rate(1180.0) / dusk.rate(1000.0) == pytest.approx(0.5)
    assert dusk.rate(1000.0, offset=10.0) == pytest.approx(dusk.rate(1180.0))
    dawn = Twilight("dawn", start=0.0, m0=60.0, halving_s=120.0)
    assert dawn.rate(120.0) / dawn.rate(0.0) == pytest.approx(2.0)
    assert flat_rate(50.0) == pytest.approx(32240.0) and skyglow_for_rate(flat_rate(63.3)) == pytest.approx(63.3)
    with pytest.raises(ValueError):
        Twilight("noon")


def test_what_the_camera_should_have_panel_over_twilight_over_night():
    sky = SkyCoupling("127.0.0.1", 1, Twilight("dusk", start=0.0, m0=50.0, halving_s=100.0))  # never started
    sky.filter_names, sky.slot = ["Red", "Luminance", "H_Alpha"], 2
    assert sky.wanted(50.0) == (pytest.approx(55.0), "twilight")
    sky.slot = 1
    assert sky.wanted(50.0) == (pytest.approx(60.0), "twilight")  # R: +5
    sky.panel_on, sky.intensity = True, 255.0
    assert sky.wanted(50.0) == (pytest.approx(50.0), "panel")  # 45 + R's 5
    sky.intensity = 127.5
    assert sky.wanted(50.0)[0] == pytest.approx(60.0)  # half the light: +10
    sky.intensity = 0.0
    assert sky.wanted(50.0) == (DARK_PANEL, "panel")
    sky.panel_on = False
    sky.set_twilight(None)
    assert sky.wanted(50.0) == (19.5, "night")
    assert math.isclose(sky.wanted(-10.0)[0], 19.5)


def test_which_nodes_have_a_panel():
    assert has_panel(True, "slave1") and not has_panel(False, "master") and not has_panel((), "master")
    assert has_panel(("master",), "master") and not has_panel(("master",), "slave1")
    with pytest.raises(TypeError):
        has_panel("master", "master")


@pytest.mark.parametrize("altitude,direction", [(-4.0, "dusk"), (-8.0, "dawn")])
def test_the_site_where_the_sun_stands_at_an_altitude_now(altitude, direction):
    import time

    from astropy.time import Time

    from indisync.astro.site import sun_altitudes
    from indisync.night.settings import SiteSettings

    now = time.time()
    lon = longitude_for_sun(altitude, direction, 45.0, when=now)
    alts = sun_altitudes(SiteSettings(latitude=45.0, longitude=lon), Time([now, now + 300.0], format="unix"))
    assert alts[0] == pytest.approx(altitude, abs=0.05)
    assert (alts[1] < alts[0]) == (direction == "dusk")
    with pytest.raises(ValueError):
        longitude_for_sun(-80.0, "dusk", 45.0, when=now)  # at 45° N the sun never gets below -68.5°
