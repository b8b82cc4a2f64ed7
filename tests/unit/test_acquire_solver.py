"""Solver pieces that need no sky: index coverage and the package table, hints, the settings
section, and the time bound (a hung solver's whole process group is killed)."""

import os
import time
from pathlib import Path

import pytest
from astropy.io import fits

from indisync.acquire import solver as solver_mod
from indisync.acquire.indexes import find_indexes, index_dirs, packages_for_field
from indisync.acquire.settings import AcquireSettings
from indisync.acquire.solver import SolveHints, check_indexes, hints_from_header
from indisync.config import load_config
from indisync.errors import ConfigError, NoIndexError, SolveTimeout


def fake_index(path: Path, low_arcmin: float, high_arcmin: float) -> None:
    hdu = fits.PrimaryHDU()
    hdu.header["SCALE_L"] = low_arcmin / 60 / 57.29577951308232
    hdu.header["SCALE_U"] = high_arcmin / 60 / 57.29577951308232
    hdu.writeto(path)


def test_debian_package_for_each_field_width():
    assert packages_for_field(25.4) == ["astrometry-data-tycho2-07"]  # the CCD simulator's field
    assert packages_for_field(40) == ["astrometry-data-tycho2-07", "astrometry-data-tycho2-08"]
    assert "astrometry-data-tycho2-10-19" in packages_for_field(300)
    assert packages_for_field(15) == []  # narrower than Tycho-2 serves


def test_index_coverage_names_the_package(tmp_path):
    hints = SolveHints(scale_arcsec=1.19, width_px=1280, height_px=1024)
    s = AcquireSettings(index_dirs=[str(tmp_path)])
    with pytest.raises(NoIndexError, match="no astrometry.net index files in .*astrometry-data-tycho2-07"):
        check_indexes(hints, s)
    fake_index(tmp_path / "index-4110.fits", 85, 120)  # for 2-degree fields only
    with pytest.raises(NoIndexError, match="no index file for a 25' field.*85'-120'.*tycho2-07"):
        check_indexes(hints, s)
    fake_index(tmp_path / "index-4107.fits", 22, 30)
    check_indexes(hints, s)
    assert {round(ix.scale_low_arcmin) for ix in find_indexes([tmp_path])} == {22, 85}
    (tmp_path / "index-4107.fits").unlink()
    (tmp_path / "index-4208.fits.fz").write_bytes(b"not a plain FITS header" * 200)  # e.g. fpack-compressed
    check_indexes(hints, s)  # an index whose scale cannot be read is left to astrometry.net
    (tmp_path / "catalogue.fits").write_bytes(b"x" * 2880)  # not named index-*: ignored
    assert len(find_indexes([tmp_path])) == 2
    narrow = SolveHints(scale_arcsec=0.3, width_px=1280, height_px=1024)
    with pytest.raises(NoIndexError, match="index-4200 series"):
        check_indexes(narrow, AcquireSettings(index_dirs=[str(tmp_path / "missing")]))


def test_index_dirs_from_astrometry_config(tmp_path):
    cfg = tmp_path / "astrometry.cfg"
    cfg.write_text("cpulimit 300\nadd_path /data/a\n# add_path /commented\n  add_path /data/b\nautoindex\n")
    assert index_dirs([], cfg) == [Path("/data/a"), Path("/data/b")]
    assert index_dirs(["~/idx"], cfg) == [Path(os.path.expanduser("~/idx"))]


def test_hints_say_where_the_scale_came_from():
    h = fits.Header({"NAXIS1": 1280, "NAXIS2": 1024, "PIXSIZE1": 5.2, "XBINNING": 2, "FOCALLEN": 900.0,
                     "RA": 29.6, "DEC": 39.9})
    hints = hints_from_header(h, AcquireSettings())
    assert hints.scale_source == "the frame's FOCALLEN" and hints.scale_arcsec == pytest.approx(2.3835, rel=1e-3)
    assert (hints.ra, hints.dec) == (29.6, 39.9)
    hints = hints_from_header(h, AcquireSettings(), focal_mm=450.0, ra=1.0, dec=2.0)
    assert hints.scale_source == "the mount's TELESCOPE_INFO" and hints.scale_arcsec == pytest.approx(4.767, rel=1e-3)
    assert (hints.ra, hints.dec) == (1.0, 2.0)
    hints = hints_from_header(h, AcquireSettings(focal_length_mm=1800.0), focal_mm=450.0)
    assert hints.scale_source == "config acquire.focal_length_mm"
    assert hints.field_arcmin == pytest.approx(1.1917 * 1280 / 60, rel=1e-3)
    bare = hints_from_header(fits.Header({"NAXIS1": 100, "NAXIS2": 100}), AcquireSettings())
    assert bare.scale_arcsec is None and bare.field_arcmin is None and bare.ra is None


def test_acquire_config_section():
    cfg = load_config(data={"acquire": {"tolerance_arcsec": 5, "attempts": 3, "on_failure": "stop",
                                        "index_dirs": ["/x"], "focal_length_mm": 530}})
    assert cfg.acquire.tolerance_arcsec == 5.0 and cfg.acquire.on_failure == "stop"
    assert load_config().acquire.attempts == 4 and load_config().acquire.correction == "offset"
    with pytest.raises(ConfigError, match="acquire.on_failure"):
        load_config(data={"acquire": {"on_failure": "park"}})
    with pytest.raises(ConfigError, match="acquire.attempts"):
        load_config(data={"acquire": {"attempts": 0}})
    with pytest.raises(ConfigError, match="acquire.solve_timeout"):
        load_config(data={"acquire": {"solve_timeout": -1}})


def test_a_hung_solver_is_killed_with_its_children_at_the_timeout(tmp_path, monkeypatch):
    pidfile = tmp_path / "grandchild.pid"
    # stands in for solve-field: it forks a long-running child (as solve-field runs astrometry-engine)
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    monkeypatch.setattr(solver_mod, "_command", lambda *a: ["sh", "-c", script])
    s = AcquireSettings(solve_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(SolveTimeout, match=r"acquire.solve_timeout \(1s\)"):
        solver_mod._run_solve(tmp_path / "frame.fits", SolveHints(), s, tmp_path, None)
    assert time.monotonic() - t0 < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the solver's child process outlived the timeout")


def test_solve_command_schema():
    from indisync.errors import ProtocolError
    from indisync.protocol import messages

    env = messages.make("solve", "ota1", {"exposure": 5, "ra": 29.6, "dec": 39.9})
    assert env.payload["exposure"] == 5 and env.payload["binning"] is None
    assert messages.make("solve", "ota1", {}).payload["ra"] is None
    for bad in ({"exposure": 0}, {"dec": 91}, {"binning": 9}, {"radius": 1}):
        with pytest.raises(ProtocolError):
            messages.make("solve", "ota1", bad)


def test_solve_report_round_trip_and_offset():
    from indisync.acquire.live import SolveReport, solution_report
    from indisync.acquire.solver import Solution

    sol = Solution(29.6296, 39.868, -87.0, 1.19, 1, 25.4, 20.3, 1280, 1024, 700, "index-sim-06.fits", 1.234567)
    data = solution_report(sol, SolveHints(scale_arcsec=1.19, scale_source="x"), (29.6296, 39.868 - 60 / 3600), "mount")
    assert data["offset_north_arcsec"] == pytest.approx(60.0, abs=0.01) and data["seconds"] == 1.235
    report = SolveReport.from_dict(data)
    assert report.field().rotation_deg == -87.0 and report.field().width_arcmin == 25.4
    assert solution_report(sol, SolveHints(), None, "mount")["offset_from"] is None
    with pytest.raises(ValueError, match="without ra"):
        SolveReport.from_dict({k: v for k, v in data.items() if k != "ra"})


def test_cli_rejects_bad_input_before_touching_hardware(tmp_path, capsys):
    from indisync.cli import main

    assert main(["center", "--ra", "25:00:00", "--dec", "10"]) == 2
    assert "RA '25:00:00' is outside 0..360 degrees" in capsys.readouterr().err
    assert main(["center", "--ra", "10:00:00", "--dec", "-95"]) == 2
    assert "outside -90..90" in capsys.readouterr().err
    assert main(["solve", "--file", str(tmp_path / "missing.fits")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["solve", "--exposure", "-1"]) == 2
    assert "--exposure must be positive" in capsys.readouterr().err
