"""`indisync targets` through indisync.cli.main, with a temporary config and database."""

from __future__ import annotations

import json

import pytest

from indisync.cli import main
from indisync.season.model import ACCEPTED, PENDING, REJECTED
from indisync.season.store import FrameRow, SeasonStore
from indisync.season.yamlio import load_season

SEASON = """
projects:
  - name: galaxies
    priority: 3
    targets:
      - name: M51
        ra: "13:29:52.7"
        dec: "+47:11:43"
        plan:
          ota1: [{filter: L, exposure: 300, count: 4}]
          ota2: [{filter: Red, exposure: 300, count: 2}, {filter: Green, exposure: 300, count: 2}]
      - name: M101
        ra: 210.8
        dec: 54.35
        priority: 8
        plan:
          ota1: [{filter: L, exposure: 120, count: 10}]
"""


@pytest.fixture
def rig(tmp_path):
    """A config whose storage.directory holds the default database, and that database knowing the wheels."""
    images = tmp_path / "images"
    config = tmp_path / "master.yaml"
    config.write_text(f"node: {{name: ota1, role: master}}\nstorage: {{directory: {images}}}\n")
    with SeasonStore(images / "indisync.db") as store:
        store.note_node("ota1", "master", ["L", "Red", "Ha"], at=0.0)
        store.note_node("ota2", "slave", ["Red", "Green", "Blue"], at=0.0)
    return config, images / "indisync.db"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_then_list_and_show_as_json(rig, capsys):
    config, db = rig
    code, out, err = run(capsys, "targets", "add", "M51", "--ra", "13:29:52.7", "--dec", "+47:11:43", "--project",
                         "galaxies", "--priority", "7", "--pa", "30", "--min-altitude", "35", "--start-date",
                         "2027-03-01", "--plan", "ota1:L:300:4", "ota2:Red:300:2", "ota2:Green:300:2:2",
                         "--config", str(config))
    assert code == 0, err
    assert "added M51" in out and str(db) in out
    code, out, _ = run(capsys, "targets", "list", "--json", "--config", str(config))
    assert code == 0
    (row,) = json.loads(out)
    assert row["name"] == "M51" and row["project"] == "galaxies" and row["priority"] == 7
    assert row["ra"] == pytest.approx(202.4696, abs=1e-4) and row["dec"] == pytest.approx(47.1953, abs=1e-4)
    assert row["nodes"] == {"ota1": {"done": 0, "desired": 4}, "ota2": {"done": 0, "desired": 4}}
    assert row["done_percent"] == 0.0 and row["complete"] is False
    code, out, _ = run(capsys, "targets", "show", "M51", "--json", "--config", str(config))
    shown = json.loads(out)
    assert shown["target"]["pa"] == 30 and shown["target"]["constraints"] == {"min_altitude": 35}
    assert shown["target"]["dates"] == {"start": "2027-03-01"}
    assert [(r["node"], r["filter"], r["binning"], r["desired"]) for r in shown["lines"]] == [
        ("ota1", "L", 1, 4), ("ota2", "Red", 1, 2), ("ota2", "Green", 2, 2)]


def test_list_and_show_count_frames_by_grade(rig, capsys):
    config, db = rig
    assert main(["targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", "--plan", "ota1:L:300:4",
                 "ota2:Red:300:2", "--config", str(config)]) == 0
    with SeasonStore(db) as store:
        for i, grade in enumerate([ACCEPTED, ACCEPTED, REJECTED, PENDING]):
            store.record_frame(FrameRow("ota1", "M51", "L", 300.0, f"/i/l{i}.fits", grade, 0.0))
        store.record_frame(FrameRow("ota2", "M51", "Red", 300.0, "/i/r0.fits", ACCEPTED, 0.0))
        store.record_frame(FrameRow("ota2", "M51", "Red", 300.0, "/i/r1.fits", ACCEPTED, 0.0))
        store.record_frame(FrameRow("ota2", "M51", "Red", 300.0, "/i/r2.fits", ACCEPTED, 0.0, surplus=True))
        store.record_frame(FrameRow("ota2", "M51", "Blue", 300.0, "/i/b0.fits", ACCEPTED, 0.0))
    capsys.readouterr()
    code, out, _ = run(capsys, "targets", "list", "--json", "--config", str(config))
    (row,) = json.loads(out)
    assert row["nodes"] == {"ota1": {"done": 3, "desired": 4}, "ota2": {"done": 2, "desired": 2}}
    assert row["done_percent"] == pytest.approx(100 * 5 / 6, abs=0.1)
    code, out, _ = run(capsys, "targets", "show", "M51", "--json", "--config", str(config))
    lines = {(r["node"], r["filter"]): r for r in json.loads(out)["lines"]}
    assert {k: lines[("ota1", "L")][k] for k in ("desired", "accepted", "rejected", "pending", "surplus")} == {
        "desired": 4, "accepted": 2, "rejected": 1, "pending": 1, "surplus": 0}
    assert lines[("ota2", "Red")]["surplus"] == 1 and lines[("ota2", "Red")]["accepted"] == 2
    assert lines[("ota2", "Blue")]["exposure"] is None and lines[("ota2", "Blue")]["accepted"] == 1  # not in the plan
    code, out, _ = run(capsys, "targets", "show", "M51", "--config", str(config))  # the table
    assert code == 0 and "ACCEPTED" in out and "13:30:00.0" in out and "+47:12:00" in out
    code, out, _ = run(capsys, "targets", "list", "--config", str(config))
    assert "M51" in out and "83%" in out and "ota1 3/4" in out and "ota2 2/2" in out


def test_a_filter_not_in_the_wheel_is_refused_naming_it(rig, capsys):
    config, db = rig
    code, out, err = run(capsys, "targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", "--plan",
                         "ota2:Ha:300:2", "--config", str(config))
    assert code == 2
    assert "'Ha'" in err and "ota2" in err and "Red, Green, Blue" in err
    code, out, err = run(capsys, "targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", "--plan",
                         "ota9:L:300:2", "--config", str(config))
    assert code == 2 and "'ota9'" in err and "known: ota1, ota2" in err
    with SeasonStore(db) as store:
        assert store.targets() == []


def test_an_unknown_rig_needs_no_check(tmp_path, capsys):
    db = tmp_path / "fresh.db"
    code, _, err = run(capsys, "targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", "--plan", "ota1:L:300:2",
                       "--db", str(db))
    assert code == 2 and "Start the rig once" in err and "--no-check" in err
    code, out, err = run(capsys, "targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", "--plan", "ota1:L:300:2",
                         "--db", str(db), "--no-check")
    assert code == 0, err


@pytest.mark.parametrize("argv, says", [
    (["--plan", "ota1:L:300"], "expected NODE:FILTER:EXPOSURE:COUNT[:BIN]"),
    (["--plan", "ota1:L:abc:3"], "EXPOSURE must be seconds"),
    (["--plan", "ota1:L:300:-3"], "plan.ota1[0].count: got -3; allowed: an integer >= 0"),
    (["--plan", "ota1:L:0:3"], "plan.ota1[0].exposure"),
    (["--priority", "0"], "priority: got 0; allowed: an integer 1..10"),
    (["--start-date", "tomorrow"], "dates.start"),
])
def test_bad_add_arguments_say_what_is_allowed(rig, capsys, argv, says):
    config, _ = rig
    code, _, err = run(capsys, "targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", *argv, "--config", str(config))
    assert code == 2 and says in err, err


def test_bad_coordinates(rig, capsys):
    config, _ = rig
    code, _, err = run(capsys, "targets", "add", "M51", "--ra", "25:00:00", "--dec", "47.2", "--config", str(config))
    assert code == 2 and "target 'M51': ra:" in err and "outside" in err
    code, _, err = run(capsys, "targets", "add", "M51", "--ra", "10", "--dec=-95", "--config", str(config))
    assert code == 2 and "dec:" in err and "-90..90" in err


def test_add_twice_needs_replace_and_keeps_frames(rig, capsys):
    config, db = rig
    base = ["targets", "add", "M51", "--ra", "202.5", "--dec", "47.2", "--config", str(config)]
    assert main(base + ["--plan", "ota1:L:300:2"]) == 0
    with SeasonStore(db) as store:
        store.record_frame(FrameRow("ota1", "M51", "L", 300.0, "/i/1.fits", ACCEPTED, 0.0))
    capsys.readouterr()
    code, _, err = run(capsys, *base, "--plan", "ota1:L:300:5")
    assert code == 2 and "exists already" in err and "--replace" in err
    code, out, _ = run(capsys, *base, "--plan", "ota1:L:300:5", "--replace")
    assert code == 0 and "replaced M51" in out
    code, out, _ = run(capsys, "targets", "show", "M51", "--json", "--config", str(config))
    (line,) = json.loads(out)["lines"]
    assert (line["desired"], line["accepted"]) == (5, 1)


def test_import_export_round_trip_through_the_cli(rig, tmp_path, capsys):
    config, _ = rig
    source = tmp_path / "season.yaml"
    source.write_text(SEASON)
    code, out, err = run(capsys, "targets", "import", str(source), "--config", str(config))
    assert code == 0, err
    assert "imported 2 targets (2 new, 0 replaced) in 1 project" in out
    exported = tmp_path / "out" / "export.yaml"
    exported.parent.mkdir()
    code, out, err = run(capsys, "targets", "export", str(exported), "--config", str(config))
    assert code == 0 and "exported 2 targets" in err
    projects, targets = load_season(source.read_text(), "a")
    again = load_season(exported.read_text(), "b")
    assert sorted(again[1], key=lambda t: t.name) == sorted(targets, key=lambda t: t.name)
    assert again[0] == projects
    code, out, _ = run(capsys, "targets", "export", "--config", str(config))  # to standard output
    assert code == 0 and load_season(out, "stdout")[1] == again[1]


def test_import_is_all_or_nothing_without_replace(rig, tmp_path, capsys):
    config, db = rig
    assert main(["targets", "add", "M101", "--ra", "1", "--dec", "2", "--project", "other", "--config",
                 str(config)]) == 0
    source = tmp_path / "season.yaml"
    source.write_text(SEASON)
    capsys.readouterr()
    code, _, err = run(capsys, "targets", "import", str(source), "--config", str(config))
    assert code == 2 and "M101" in err and "--replace" in err
    with SeasonStore(db) as store:
        assert [t.name for t in store.targets()] == ["M101"]  # M51 was not added either
    code, out, _ = run(capsys, "targets", "import", str(source), "--replace", "--config", str(config))
    assert code == 0 and "(1 new, 1 replaced)" in out
    with SeasonStore(db) as store:
        assert store.target("M101").project == "galaxies" and store.target("M101").priority == 8


def test_import_reports_the_file_and_path_of_a_bad_value(rig, tmp_path, capsys):
    config, _ = rig
    source = tmp_path / "bad.yaml"
    source.write_text(SEASON.replace("count: 10", "count: -10"))
    code, _, err = run(capsys, "targets", "import", str(source), "--config", str(config))
    assert code == 2
    assert f"{source}: projects[0].targets[1].plan.ota1[0].count: got -10" in err
    source.write_text(SEASON.replace("Green", "Ha"))  # ota2's wheel has no Ha
    code, _, err = run(capsys, "targets", "import", str(source), "--config", str(config))
    assert code == 2 and "target M51: plan.ota2[1]" in err and "'Ha'" in err
    code, _, err = run(capsys, "targets", "import", str(tmp_path / "missing.yaml"), "--config", str(config))
    assert code == 2 and "cannot read" in err


def test_remove(rig, capsys):
    config, db = rig
    assert main(["targets", "add", "M51", "--ra", "1", "--dec", "2", "--config", str(config)]) == 0
    with SeasonStore(db) as store:
        store.record_frame(FrameRow("ota1", "M51", "L", 300.0, "/i/1.fits", ACCEPTED, 0.0))
    capsys.readouterr()
    code, out, _ = run(capsys, "targets", "remove", "M51", "--config", str(config))
    assert code == 0 and "1 frame record kept" in out
    code, out, _ = run(capsys, "targets", "list", "--json", "--config", str(config))
    assert json.loads(out) == []
    code, _, err = run(capsys, "targets", "remove", "M51", "--config", str(config))
    assert code == 2 and "no target 'M51'" in err
    code, _, err = run(capsys, "targets", "show", "M51", "--config", str(config))
    assert code == 2 and "indisync targets list" in err


def test_reading_commands_do_not_create_a_database(tmp_path, capsys):
    db = tmp_path / "none" / "indisync.db"
    code, out, _ = run(capsys, "targets", "list", "--json", "--db", str(db))
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, "targets", "list", "--db", str(db))
    assert code == 0 and "no targets" in out
    code, out, _ = run(capsys, "targets", "export", "--db", str(db))
    assert code == 0 and load_season(out, "x") == ([], [])
    code, _, err = run(capsys, "targets", "show", "M51", "--db", str(db))
    assert code == 2
    assert not db.exists()


def test_a_damaged_database_is_an_error_not_a_traceback(tmp_path, capsys):
    db = tmp_path / "indisync.db"
    db.write_bytes(b"garbage" * 1000)
    code, _, err = run(capsys, "targets", "list", "--db", str(db))
    assert code == 2 and str(db) in err and "Move it aside" in err


def test_options_before_the_action_work_too(rig, capsys):
    config, _ = rig
    code, out, _ = run(capsys, "targets", "--config", str(config), "list", "--json")
    assert code == 0 and json.loads(out) == []
