"""`indisync filters` and `indisync expose` run as a user runs them, against real simulators."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from astropy.io import fits

from indisync.sim.indi import IndiServer, free_port

from .test_devices_sim import SIMULATOR_FILTERS, count_stars_with_sep

pytestmark = pytest.mark.integration
INDISYNC = [sys.executable, "-m", "indisync.cli"]


def indisync(*args, timeout=60):
    return subprocess.run([*INDISYNC, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sim():
    # The telescope is needed: the CCD simulator draws the stars around the mount's pointing.
    with IndiServer(drivers=["indi_simulator_ccd", "indi_simulator_wheel", "indi_simulator_focus", "indi_simulator_telescope"]) as server:
        yield server


def test_filters_prints_slots(sim):
    result = indisync("filters", "--indi", sim.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{i} {n}" for i, n in enumerate(SIMULATOR_FILTERS, 1)]


def test_expose_writes_frame_with_stars_and_header(sim, tmp_path):
    out = tmp_path / "frame.fits"
    result = indisync("expose", "--indi", sim.address, "--exposure", "1", "--out", str(out), "--filter", "Blue")
    assert result.returncode == 0, result.stderr
    with fits.open(out) as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert header["FILTER"] == "Blue"
    assert header["EXPTIME"] == 1.0
    assert header["INSTRUME"] == "CCD Simulator"
    assert header["XBINNING"] == 1
    assert isinstance(header["FOCUSPOS"], int)
    assert "T" in header["DATE-OBS"] and len(header["DATE-OBS"].split(".")[-1]) == 3
    assert count_stars_with_sep(data) >= 20


def test_expose_unknown_filter_lists_names_and_writes_nothing(sim, tmp_path):
    out = tmp_path / "frame.fits"
    result = indisync("expose", "--indi", sim.address, "--exposure", "1", "--out", str(out), "--filter", "Purple")
    assert result.returncode != 0
    assert "Purple" in result.stderr and "1 Red" in result.stderr and "8 Luminance" in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_expose_never_overwrites(sim, tmp_path):
    out = tmp_path / "frame.fits"
    out.write_bytes(b"precious")
    result = indisync("expose", "--indi", sim.address, "--exposure", "0.1", "--out", str(out))
    assert result.returncode != 0 and "never overwrites" in result.stderr
    assert out.read_bytes() == b"precious"


def test_no_server_exits_non_zero_quickly_naming_address():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = indisync("filters", "--indi", address)
    assert result.returncode != 0
    assert address in result.stderr
    assert time.monotonic() - started < 15


def test_bad_config_names_file_and_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("indi:\n  prot: 7624\n")
    result = indisync("filters", "--config", str(cfg))
    assert result.returncode != 0
    assert str(cfg) in result.stderr and "indi.prot" in result.stderr and "port" in result.stderr
