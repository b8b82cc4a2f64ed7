"""A node's calibration library (calib.library): SQLite, WAL, versioned, foreign/newer files refused."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from indisync.calib.library import APP, CalibLibrary
from indisync.calib.model import DarkSet, FlatSet
from indisync.calib.panel import PanelTraining
from indisync.errors import CalibError

DAY = 86400.0
NOW = 1_750_000_000.0


@pytest.fixture
def lib(tmp_path):
    library = CalibLibrary.for_storage(tmp_path)
    yield library
    library.close()


def test_for_storage_path_wal_and_version(tmp_path, lib):
    assert lib.path == tmp_path / "calib" / "library.db" and lib.path.exists()
    assert lib.journal_mode() == "wal"
    assert lib.schema_version() == 1


def test_flat_sets_round_trip(lib):
    fset = FlatSet.make("Ha", 2, 90.0, 100, 10)
    lib.add_flat_set("ota1", fset, "sky", 20, 0.5, 4.2, 24000, 28000, "/data/calib/ota1/2025-01-10", NOW,
                     direction="dusk")
    lib.add_flat_set("ota2", FlatSet.make(None), "panel", 18, 2.0, 2.0, 26000, 26500, "/x", NOW + 1)
    (rec,) = lib.flat_sets("ota1")
    assert rec.set == fset and rec.mode == "sky" and rec.direction == "dusk" and rec.kept == 20
    assert (rec.exposure_min, rec.exposure_max, rec.adu_min, rec.adu_max) == (0.5, 4.2, 24000, 28000)
    assert [r.node for r in lib.flat_sets()] == ["ota1", "ota2"]
    assert lib.flat_sets("ota2")[0].set.filter is None


def test_find_dark_set_youngest_within_tolerance_and_age(lib):
    dset = DarkSet.make("dark", 300, 1, 100, 10)
    lib.add_dark_set("ota1", dset, -10.0, -10.1, 20, "/a", NOW - 20 * DAY)
    lib.add_dark_set("ota1", dset, -10.0, -9.9, 20, "/b", NOW - 2 * DAY)
    lib.add_dark_set("ota1", dset, -20.0, -20.0, 20, "/c", NOW - 1 * DAY)  # another setpoint
    lib.add_dark_set("ota2", dset, -10.0, -10.0, 20, "/d", NOW)  # another node
    lib.add_dark_set("ota1", DarkSet.make("dark", 300), -10.0, -10.0, 20, "/e", NOW)  # no gain/offset: another set
    found = lib.find_dark_set("ota1", dset, -10.0, 0.5, 30, NOW)
    assert found.folder == "/b" and found.age_days(NOW) == pytest.approx(2.0)
    assert lib.find_dark_set("ota1", dset, -10.0, 0.5, 1, NOW) is None  # too old
    assert lib.find_dark_set("ota1", dset, -15.0, 0.5, 30, NOW) is None  # no set at that temperature
    assert lib.find_dark_set("ota1", dset, -20.2, 0.5, 30, NOW).folder == "/c"
    assert lib.find_dark_set("ota1", DarkSet.make("dark", 600, 1, 100, 10), -10.0, 0.5, 30, NOW) is None
    assert lib.find_dark_set("ota1", DarkSet.make("dark", 300), -10.0, 0.5, 30, NOW).folder == "/e"


def test_uncooled_darks_match_uncooled_sets(lib):
    bias = DarkSet.make("bias", 0)
    lib.add_dark_set("ota1", bias, None, 12.5, 20, "/ambient", NOW - DAY)
    assert lib.find_dark_set("ota1", bias, None, 1.0, 30, NOW).folder == "/ambient"
    assert lib.find_dark_set("ota1", bias, -10.0, 1.0, 30, NOW) is None
    lib.add_dark_set("ota1", bias, -10.0, None, 20, "/cooled", NOW - DAY)  # no temperature: its setpoint
    assert lib.find_dark_set("ota1", bias, -10.0, 1.0, 30, NOW).folder == "/cooled"
    assert lib.find_dark_set("ota1", bias, None, 1.0, 30, NOW).folder == "/ambient"
    assert [r.set for r in lib.dark_sets("ota1")] == [bias, bias]


def test_panel_training_saved_and_replaced(lib):
    assert lib.panel_training("ota1", "L", 1) is None
    lib.save_panel_training("ota1", "L", 1, PanelTraining(120.0, 2.0, 26000.0, 5), NOW)
    lib.save_panel_training("ota1", None, 1, PanelTraining(80.0, 1.0, 25000.0, 4), NOW)
    got = lib.panel_training("ota1", "L", 1)
    assert (got.brightness, got.exposure, got.adu, got.steps) == (120.0, 2.0, 26000.0, 0)  # steps 0: re-used
    assert lib.panel_training("ota1", "L", 2) is None and lib.panel_training("ota2", "L", 1) is None
    assert lib.panel_training("ota1", None, 1).brightness == 80.0
    lib.save_panel_training("ota1", "L", 1, PanelTraining(130.0, 2.5, 26100.0, 3), NOW + 1)
    assert lib.panel_training("ota1", "L", 1).brightness == 130.0


def test_survives_reopening(tmp_path):
    with CalibLibrary.for_storage(tmp_path) as lib:
        lib.add_dark_set("ota1", DarkSet.make("bias", 0), -10, -10, 20, "/x", NOW)
    with CalibLibrary.for_storage(tmp_path) as lib:
        assert len(lib.dark_sets()) == 1 and lib.schema_version() == 1


def test_foreign_database_refused_naming_the_file(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(CalibError, match=r"other\.db is not an indisync calibration library.*move it aside"):
        CalibLibrary(path)
    conn = sqlite3.connect(path)  # nothing was written to it
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["photos"]
    conn.close()


def test_season_database_refused(tmp_path):
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, app TEXT NOT NULL, applied_at REAL)")
    conn.execute("INSERT INTO schema_version VALUES (1, 'indisync-season', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(CalibError, match="indisync-season"):
        CalibLibrary(path)


def test_newer_database_refused_with_the_fix(tmp_path):
    with CalibLibrary.for_storage(tmp_path) as lib:
        path = lib.path
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, ?, 0)", (APP,))
    conn.commit()
    conn.close()
    with pytest.raises(CalibError, match=r"library\.db has calibration schema version 99.*Upgrade indisync"):
        CalibLibrary(path)


def test_damaged_file_refused(tmp_path):
    path = tmp_path / "library.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CalibError, match="damaged or not a SQLite file"):
        CalibLibrary(path)


def test_threads_share_one_library(lib):
    errors = []

    def add(node):
        try:
            for i in range(25):
                lib.add_dark_set(node, DarkSet.make("dark", i + 1), -10, -10, 20, f"/{node}/{i}", NOW + i)
        except Exception as exc:  # pragma: no cover - the failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(f"ota{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(lib.dark_sets()) == 100


def test_closed_library_is_a_clear_error(lib):
    lib.close()
    with pytest.raises(CalibError, match="closed"):
        lib.dark_sets()
