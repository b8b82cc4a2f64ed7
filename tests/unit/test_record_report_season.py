"""Issue 16, item 6: the night report's "Season" section, from the master's season database
(indisync.season.store): each target imaged tonight, per OTA and filter, frames tonight and accepted
/ rejected so far against the desired count. Absent with no database (no scheduler: section, or no
file); a database that cannot be read is one line, never a lost report.

A temporary database and a small night log at fixed dates: nothing here reads the clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from indisync.record.report import build, write_report
from indisync.record.season import night_bounds
from indisync.season.model import ACCEPTED, PENDING, REJECTED, PlanLine, Target

UTC = timezone.utc
NIGHT = "2027-03-12"  # the log's name: the night from 12:00 UTC on the 12th to 12:00 UTC on the 13th
TONIGHT = datetime(2027, 3, 12, 22, 0, tzinfo=UTC)
LAST_WEEK = TONIGHT - timedelta(days=7)


def night_log(tmp_path):
    """A short night: the master (ota1) and a slave (ota2) each report two frames."""
    entries = [{"rx": "2027-03-12T20:00:00.000Z", "node": n, "kind": "state", "type": "state",
                "payload": {"role": r, "phase": "idle"}} for n, r in (("ota1", "master"), ("ota2", "slave"))]
    for i in range(2):
        for node, filt in (("ota1", "Luminance"), ("ota2", "Red")):
            t = f"2027-03-12T22:0{i}:00.000Z"
            entries.append({"rx": t, "node": node, "kind": "event", "type": "exposure_done",
                            "payload": {"exposure_id": str(i), "status": "ok", "filter": filt, "start": t,
                                        "duration": 60.0}})
    path = tmp_path / f"{NIGHT}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


M51 = Target("spring", "M51", 202.47, 47.2, plan=(PlanLine("ota1", "Luminance", 300, 10),
                                                   PlanLine("ota2", "Red", 300, 4), PlanLine("ota2", "Green", 300, 4)))
M101 = Target("spring", "M101", 210.8, 54.35, plan=(PlanLine("ota1", "Luminance", 300, 5),))
M81 = Target("spring", "M81", 148.9, 69.07, plan=(PlanLine("ota1", "Luminance", 300, 5),))


def season_db(tmp_path):
    from indisync.season.store import FrameRow, SeasonStore

    path = tmp_path / "indisync.db"
    n = 0

    def frame(store, node, target, filt, grade, when, surplus=False):
        nonlocal n
        n += 1
        store.record_frame(FrameRow(node=node, target=target, filter=filt, exposure=300.0,
                                    path=f"/data/{node}/{target}_{filt}_{n:04d}.fits", grade=grade,
                                    taken_at=when.timestamp(), surplus=surplus))

    with SeasonStore(path) as store:
        for target in (M51, M101, M81):
            store.add_target(target)
        # last week: M51 ota1 4 accepted + 1 rejected; M101 done entirely (not imaged tonight)
        for i in range(4):
            frame(store, "ota1", "M51", "Luminance", ACCEPTED, LAST_WEEK + timedelta(minutes=i))
        frame(store, "ota1", "M51", "Luminance", REJECTED, LAST_WEEK + timedelta(minutes=9))
        for i in range(5):
            frame(store, "ota1", "M101", "Luminance", ACCEPTED, LAST_WEEK + timedelta(minutes=20 + i))
        # tonight: M51 ota1 3 (1 rejected), ota2 Red 4 accepted + 1 surplus, Green 1 pending; M81 ota1 2
        for i, grade in enumerate((ACCEPTED, REJECTED, ACCEPTED)):
            frame(store, "ota1", "M51", "Luminance", grade, TONIGHT + timedelta(minutes=i))
        for i in range(4):
            frame(store, "ota2", "M51", "Red", ACCEPTED, TONIGHT + timedelta(minutes=i))
        frame(store, "ota2", "M51", "Red", ACCEPTED, TONIGHT + timedelta(minutes=5), surplus=True)
        frame(store, "ota2", "M51", "Green", PENDING, TONIGHT + timedelta(minutes=6))
        for i in range(2):
            frame(store, "ota1", "M81", "Luminance", ACCEPTED, TONIGHT + timedelta(hours=3, minutes=i))
        # tomorrow afternoon: another night
        frame(store, "ota1", "M81", "Luminance", ACCEPTED, datetime(2027, 3, 13, 12, 30, tzinfo=UTC))
    return path


def rows_of(target: dict) -> dict:
    return {(r["node"], r["filter"]): r for r in target["rows"]}


def test_the_season_section_counts_tonight_and_totals_per_ota_and_filter(tmp_path):
    db = season_db(tmp_path)
    data = build(night_log(tmp_path), zone=UTC, starts_hour=12, season_db=db)
    season = data["season"]
    assert season["error"] is None and season["targets_in_db"] == 3
    assert season["night_start"] == "2027-03-12T12:00:00Z" and season["night_end"] == "2027-03-13T12:00:00Z"
    assert [t["name"] for t in season["targets"]] == ["M51", "M81"]  # M101 was imaged last week only
    m51, m81 = season["targets"]
    assert m51["frames_tonight"] == 9 and m51["project"] == "spring" and not m51["complete"]
    r = rows_of(m51)
    lum, red, green = r[("ota1", "Luminance")], r[("ota2", "Red")], r[("ota2", "Green")]
    assert (lum["tonight"], lum["tonight_rejected"], lum["accepted"], lum["rejected"], lum["desired"]) == (3, 1, 6, 2, 10)
    assert (red["tonight"], red["accepted"], red["surplus"], red["desired"], red["met"]) == (5, 4, 1, 4, True)
    assert (green["tonight"], green["pending"], green["accepted"]) == (1, 1, 0)
    assert (rows_of(m81)[("ota1", "Luminance")]["tonight"], rows_of(m81)[("ota1", "Luminance")]["accepted"]) == (2, 3)
    json.dumps(data)

    page = write_report(night_log(tmp_path), tmp_path / "out", zone=UTC, starts_hour=12, season_db=db).read_text()
    assert "<h2>Season</h2>" in page and "M51 (spring): 9 frame(s) tonight" in page
    assert "<td>ota1</td><td>Luminance</td><td>3 (1 rejected)</td><td>6 / 10</td><td>2</td><td></td><td></td></tr>" in page
    assert "<td>ota2</td><td>Green</td><td>1</td><td>0 / 4</td><td>0</td><td>1</td><td></td></tr>" in page
    assert "<td>ota2</td><td>Red</td><td>5</td><td>4 / 4 met</td><td>0</td><td></td><td>1</td>" in page
    assert json.loads((tmp_path / "out" / "report.json").read_text())["season"]["targets"][0]["name"] == "M51"


def test_the_season_section_is_absent_without_a_database(tmp_path):
    log = night_log(tmp_path)
    assert build(log, zone=UTC, season_db=None)["season"] is None  # no scheduler: section
    assert build(log, zone=UTC, season_db=tmp_path / "nothing-here.db")["season"] is None  # no file
    page = write_report(log, tmp_path / "out", zone=UTC).read_text()
    assert "Season" not in page and "<h2>Nodes</h2>" in page


def test_an_unreadable_database_is_a_line_never_a_lost_report(tmp_path):
    bad = tmp_path / "indisync.db"
    bad.write_bytes(b"this is not an SQLite database, it is a shopping list\n" * 20)
    page = write_report(night_log(tmp_path), tmp_path / "out", zone=UTC, season_db=bad).read_text()
    assert "The season database" in page and "could not be read" in page and str(bad) in page
    assert "<h2>Nodes</h2>" in page and "What failed and why" in page  # the rest of the report is there


def test_a_night_without_season_frames_says_so(tmp_path):
    from indisync.season.store import SeasonStore

    with SeasonStore(tmp_path / "indisync.db") as store:
        store.add_target(M101)
    page = write_report(night_log(tmp_path), tmp_path / "out", zone=UTC, season_db=tmp_path / "indisync.db").read_text()
    assert "No season target was imaged tonight (1 target(s) in" in page


def test_a_target_removed_after_tonight_is_left_out_as_the_store_lists_it(tmp_path):
    """The store keeps a removed target's frame rows but lists them no more (indisync targets
    remove): the report follows it."""
    from indisync.season.store import SeasonStore

    db = season_db(tmp_path)
    with SeasonStore(db) as store:
        assert store.remove_target("M81")
    data = build(night_log(tmp_path), zone=UTC, starts_hour=12, season_db=db)
    assert [t["name"] for t in data["season"]["targets"]] == ["M51"] and data["season"]["targets_in_db"] == 2


@pytest.mark.parametrize("night,start,end", [
    ("2027-01-15", "2027-01-15T11:00:00+00:00", "2027-01-16T11:00:00+00:00"),  # CET
    ("2027-03-27", "2027-03-27T11:00:00+00:00", "2027-03-28T10:00:00+00:00"),  # the night clocks go forward
])
def test_the_night_is_the_sites_from_starts_hour_to_starts_hour(night, start, end):
    s, e = night_bounds(night, ZoneInfo("Europe/Berlin"), 12)
    assert (s.isoformat(), e.isoformat()) == (start, end)
    assert night_bounds("not-a-date", UTC, 12) is None


def test_the_report_reads_the_database_of_a_config_with_a_scheduler(tmp_path):
    from indisync.config import load_config
    from indisync.record.season import season_db as db_of
    from indisync.season.store import db_path

    base = {"node": {"name": "ota1", "role": "master"}, "storage": {"directory": str(tmp_path)}}
    assert db_of(load_config(data=base)) is None
    cfg = load_config(data={**base, "scheduler": {}})
    assert db_of(cfg) == db_path(cfg) == tmp_path / "indisync.db"
