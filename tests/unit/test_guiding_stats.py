"""RMS in pixels and arcseconds; pixel scale from frame headers; guider settings validation."""

import math

import pytest

from indisync.configtypes import ConfigValueError, build
from indisync.guiding.settings import DitherSettings, GuiderSettings
from indisync.guiding.stats import GuideStats, pixel_scale_from_header, rms


def test_rms_is_about_the_lock_not_the_mean():
    assert rms([2.0, 2.0, 2.0]) == 2.0
    assert rms([]) == 0.0
    s = GuideStats(pixel_scale=0.5)
    for ra, dec in [(3, 4), (-3, -4), (3, -4), (-3, 4)]:
        s.add(ra, dec)
    assert s.rms_ra_px == 3 and s.rms_dec_px == 4 and s.rms_px == 5
    assert s.summary()["rms_arcsec"] == 2.5 and s.peak_px == 5
    assert GuideStats().summary()["rms_arcsec"] is None


def test_pixel_scale_from_header():
    assert pixel_scale_from_header({"SCALE": 0.55}) == 0.55
    assert pixel_scale_from_header({"XPIXSZ": 4.8, "FOCALLEN": 900.0}) == pytest.approx(206.265 * 4.8 / 900)
    assert pixel_scale_from_header({"PIXSIZE1": 2.4, "XBINNING": 2, "FOCALLEN": 900.0}) == pytest.approx(
        206.265 * 4.8 / 900)
    assert pixel_scale_from_header({"PIXSIZE1": 2.4}) is None
    assert pixel_scale_from_header({}) is None


def test_settings_build_with_defaults_and_errors():
    g = build(GuiderSettings, {"exposure": 2, "aggressiveness": 0.5}, "guider")
    assert g.exposure == 2.0 and g.max_pulse_ms == 2000
    with pytest.raises(ConfigValueError, match="guider.hysteresis"):
        build(GuiderSettings, {"hysteresis": 1.0}, "guider")
    with pytest.raises(ConfigValueError, match="guider.min_pulse_ms"):
        build(GuiderSettings, {"min_pulse_ms": 500, "max_pulse_ms": 100}, "guider")
    with pytest.raises(ConfigValueError, match="unknown key"):
        build(GuiderSettings, {"agressiveness": 0.5}, "guider")
    with pytest.raises(ConfigValueError, match="dec_mode"):
        build(GuiderSettings, {"dec_mode": "up"}, "guider")


def test_dither_settings_nested_settle():
    d = build(DitherSettings, {"pixels": 5, "ra_only": True, "settle": {"pixels": 1.0, "time": 5}}, "master.dither")
    assert d.settle.pixels == 1.0 and d.settle.timeout == 60.0 and d.ra_only
    with pytest.raises(ConfigValueError, match="master.dither.settle.timeout"):
        build(DitherSettings, {"settle": {"time": 30, "timeout": 20}}, "master.dither")
    with pytest.raises(ConfigValueError, match="every_frames"):
        build(DitherSettings, {"every_frames": -1}, "master.dither")
    assert math.isclose(DitherSettings().pixels, 3.0)
