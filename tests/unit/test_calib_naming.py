"""Calibration files and headers (calib.naming)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pytest
from astropy.io import fits

from indisync.calib.naming import apply_calib_header, calib_dir, calib_stem, night_date, save_calib_frame


def test_calib_dir(tmp_path):
    assert calib_dir(tmp_path, "ota1", date(2025, 1, 10)) == tmp_path / "calib" / "ota1" / "2025-01-10"
    assert calib_dir(tmp_path, "../evil", date(2025, 1, 10)).parent.parent == tmp_path / "calib"


def test_night_date_is_the_date_at_dusk():
    utc = timezone.utc
    assert night_date(datetime(2025, 1, 11, 5, 0, tzinfo=utc).timestamp(), utc) == date(2025, 1, 10)
    assert night_date(datetime(2025, 1, 10, 20, 0, tzinfo=utc).timestamp(), utc) == date(2025, 1, 10)
    assert night_date(datetime(2025, 1, 11, 13, 0, tzinfo=utc).timestamp(), utc) == date(2025, 1, 11)


def test_stems():
    assert calib_stem("flat", "R", 1, 1.25) == "FLAT_R_1_1.25s"
    assert calib_stem("flat", None, 2, 2.0) == "FLAT_none_2_2s"
    assert calib_stem("flat", "H/Alpha", 1, 0.1) == "FLAT_H_Alpha_1_0.1s"
    assert calib_stem("dark", "R", 1, 300.0) == "DARK_1_300s"
    assert calib_stem("bias", None, 1, 0.001) == "BIAS_1_0s"
    assert calib_stem("flat", "R", 1, 1.2345678) == "FLAT_R_1_1.234568s"
    with pytest.raises(ValueError, match="flat, dark or bias"):
        calib_stem("light", None, 1, 1.0)


def _hdu(value=1.0):
    return fits.PrimaryHDU(np.full((4, 4), value, dtype=np.uint16))


def test_save_numbers_and_never_overwrites(tmp_path):
    directory = tmp_path / "calib" / "ota1" / "2025-01-10"
    first = save_calib_frame(directory, "FLAT_R_1_1.25s", _hdu(1))
    second = save_calib_frame(directory, "FLAT_R_1_1.25s", _hdu(2))
    other = save_calib_frame(directory, "FLAT_G_1_1.25s", _hdu(3))
    assert (first.name, second.name, other.name) == ("FLAT_R_1_1.25s_0001.fits", "FLAT_R_1_1.25s_0002.fits",
                                                     "FLAT_G_1_1.25s_0001.fits")
    (directory / "FLAT_R_1_1.25s_0007.fits").write_bytes(b"x")  # a gap: the next is after the highest
    assert save_calib_frame(directory, "FLAT_R_1_1.25s", _hdu(4)).name == "FLAT_R_1_1.25s_0008.fits"
    assert fits.getdata(first)[0, 0] == 1 and fits.getdata(second)[0, 0] == 2
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no temp files left


def test_save_refuses_unsafe_stems(tmp_path):
    with pytest.raises(ValueError, match="must not contain"):
        save_calib_frame(tmp_path, "../x", _hdu())


def test_headers_as_wbpp_and_siril_read_them():
    header = fits.Header()
    header["INSTRUME"] = "CCD Simulator"
    apply_calib_header(header, "flat", "R", 2, 1.25, -9.96, -10, 100, 10, "ota1", rotator_angle=90.0, mode="sky",
                       adu=26123.4)
    assert header["IMAGETYP"] == "Flat Field" and header["FRAME"] == "Flat"
    assert header["FILTER"] == "R" and header["XBINNING"] == 2 and header["YBINNING"] == 2
    assert header["EXPTIME"] == 1.25 and header["EXPOSURE"] == 1.25
    assert header["CCD-TEMP"] == -9.96 and header["SET-TEMP"] == -10.0
    assert header["GAIN"] == 100.0 and header["OFFSET"] == 10.0 and header["ROTATANG"] == 90.0
    assert header["INSTRUME"] == "CCD Simulator"  # untouched
    dark = fits.Header()
    apply_calib_header(dark, "dark", None, 1, 300, None, None, None, None, "ota1")
    assert dark["IMAGETYP"] == "Dark Frame" and "CCD-TEMP" not in dark and "GAIN" not in dark
    bias = fits.Header()
    apply_calib_header(bias, "bias", None, 1, 0.01, 5.0, None, None, None, "ota1")
    assert bias["IMAGETYP"] == "Bias Frame" and bias["FRAME"] == "Bias" and bias["EXPTIME"] == 0.01
