"""J2000 <-> JNow against published apparent places, and the separation formula."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from indisync.astro.coords import j2000_to_jnow, jnow_to_j2000, separation_arcsec, use_offline_iers


def test_offline_iers_settings_are_both_set():
    use_offline_iers()
    from astropy.utils import iers

    assert iers.conf.auto_download is False and iers.conf.auto_max_age is None


def test_today_converts_offline():
    # With auto_download=False alone, astropy raises for today's date (its table is too old).
    ra, dec = j2000_to_jnow(10.6847, 41.2690)
    assert 0 <= ra < 360 and -90 <= dec <= 90


def test_polaris_precesses_by_the_known_amount():
    # Polaris J2000 (37.95456, 89.26411); its apparent place on 2024-01-01 is about RA 3h00m, Dec
    # +89 21.2' (USNO/Stellarium): precession moves it by ~1.3 deg of RA this close to the pole.
    ra, dec = j2000_to_jnow(37.95456, 89.26411, datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert ra == pytest.approx(45.0, abs=1.0)
    assert dec == pytest.approx(89.0 + 21.2 / 60, abs=0.02)


def test_equinox_precession_in_ra_near_the_equator():
    # A star at RA 0, Dec 0 J2000: 24 years of precession (~46"/yr in RA) ~ 0.31 deg, plus nutation
    # and aberration of tens of arcseconds.
    ra, dec = j2000_to_jnow(0.0, 0.0, datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert ra == pytest.approx(0.31, abs=0.03)
    assert dec == pytest.approx(0.13, abs=0.03)


@pytest.mark.parametrize("ra,dec", [(0.0, 0.0), (10.6847, 41.269), (359.99, -60.0), (180.0, 89.9), (83.8, -5.39)])
def test_round_trip_is_exact_to_milliarcseconds(ra, dec):
    when = datetime(2026, 12, 3, 3, 0, tzinfo=timezone.utc)
    back = jnow_to_j2000(*j2000_to_jnow(ra, dec, when), when)
    assert separation_arcsec(ra, dec, *back) < 0.01


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="Dec must be"):
        j2000_to_jnow(10, 91)
    with pytest.raises(ValueError, match="not a sky position"):
        j2000_to_jnow(math.nan, 0)
    with pytest.raises(ValueError, match="naive"):
        j2000_to_jnow(10, 10, datetime(2026, 1, 1))


def test_separation():
    assert separation_arcsec(10, 20, 10, 20) == 0.0
    assert separation_arcsec(0, 0, 1, 0) == pytest.approx(3600.0)
    assert separation_arcsec(0, 89.999, 180, 89.999) == pytest.approx(7.2, abs=1e-6)
    assert separation_arcsec(0, 0, 180, 0) == pytest.approx(180 * 3600.0)
    assert separation_arcsec(359.9999, 0, 0.0001, 0) == pytest.approx(0.72, abs=1e-6)
    assert separation_arcsec(10.0, 41.0, 10.0 + 1 / 3600, 41.0) == pytest.approx(math.cos(math.radians(41)), rel=1e-6)


def test_importing_the_mount_does_not_import_astropy():
    # astro.coords loads astropy inside its functions: `indisync filters`/`status` reach the mount class.
    code = ("import sys, indisync.astro, indisync.astro.coords, indisync.devices.mount, indisync.devices.weather, "
            "indisync.devices.dome, indisync.protocol.messages, indisync.node.cooling; "
            "print('astropy' in sys.modules, 'astropy.coordinates' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
