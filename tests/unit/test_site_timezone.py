"""Issue 20 §4: ``site.timezone`` (IANA, read with zoneinfo) for night.end_at "HH:MM", the night log's
date and the report's night.

``astimezone()`` carries one fixed offset: "05:30" resolved from a CEST evening is 03:30 UTC, but on
the night the clocks go back 05:30 is 04:30 UTC, so the night ended an hour early (and a spring night
an hour late). Every test passes its zone and its datetimes explicitly: nothing here reads the
machine's zone, today's date or the clock.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from indisync.astro.site import night_windows, resolve_end_at
from indisync.config import load_config
from indisync.errors import ConfigError
from indisync.night.settings import NightSettings, SiteSettings
from indisync.record.nightlog import NightLogWriter, night_of
from indisync.timezones import computer_zone, local_clock_time, site_zone

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# ---- night.end_at "HH:MM" across a change of the clocks -------------------------------------------
@pytest.mark.parametrize("after, zone, expected", [
    # Berlin, clocks back on 2026-10-25 at 03:00 CEST: 05:30 is CET (+1), 04:30 UTC, not 03:30
    (utc(2026, 10, 24, 16, 0), BERLIN, utc(2026, 10, 25, 4, 30)),
    # Berlin, clocks forward on 2026-03-29 at 02:00 CET: 05:30 is CEST (+2), 03:30 UTC, not 04:30
    (utc(2026, 3, 28, 18, 0), BERLIN, utc(2026, 3, 29, 3, 30)),
    # New York, clocks back on 2026-11-01 at 02:00 EDT: 05:30 EST is 10:30 UTC, not 09:30
    (utc(2026, 10, 31, 22, 0), NEW_YORK, utc(2026, 11, 1, 10, 30)),
    # an ordinary winter night: unchanged
    (utc(2026, 12, 3, 16, 0), BERLIN, utc(2026, 12, 4, 4, 30)),
])
def test_end_at_hhmm_is_the_sites_wall_clock_across_a_change_of_the_clocks(after, zone, expected):
    assert resolve_end_at("05:30", after, zone) == expected
    assert expected.astimezone(zone).strftime("%H:%M") == "05:30"


def test_end_at_before_midnight_the_same_evening_and_iso_unchanged():
    assert resolve_end_at("23:15", utc(2026, 10, 24, 16, 0), BERLIN) == utc(2026, 10, 24, 21, 15)  # CEST
    assert resolve_end_at("2026-10-25T04:00:00Z", utc(2026, 10, 24, 16, 0), BERLIN) == utc(2026, 10, 25, 4, 0)


def test_a_time_the_clocks_skip_is_the_jump_and_a_time_shown_twice_its_first_time():
    # 2026-03-29 02:00 CET -> 03:00 CEST: "02:30" never shows; the clock passes it at the jump, 01:00 UTC
    assert local_clock_time(BERLIN, 2, 30, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)
    # 2026-10-25 03:00 CEST -> 02:00 CET: "02:30" shows twice; the first is 00:30 UTC
    assert local_clock_time(BERLIN, 2, 30, utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30)


def test_the_next_such_time_is_strictly_after():
    at = utc(2026, 12, 4, 4, 30)  # 05:30 in Berlin
    assert local_clock_time(BERLIN, 5, 30, at) == utc(2026, 12, 5, 4, 30)


def test_night_windows_cut_at_the_sites_end_at_on_the_night_the_clocks_go_back():
    munich = SiteSettings(latitude=48.14, longitude=11.58, elevation=520, timezone="Europe/Berlin")
    w = night_windows(munich, NightSettings(end_at="05:30"), None, utc(2026, 10, 24, 10, 0))
    assert w.end_at == utc(2026, 10, 25, 4, 30)  # 05:30 CET; astimezone() gave 03:30 UTC
    assert w.usable.end == w.end_at


# ---- the config ----------------------------------------------------------------------------------
def test_site_timezone_is_checked_with_zoneinfo_and_named_in_the_error():
    cfg = load_config(data={"site": {"latitude": 48.1, "longitude": 11.6, "timezone": "Europe/Berlin"}})
    assert cfg.site.zone == BERLIN and site_zone(cfg) == BERLIN
    with pytest.raises(ConfigError) as err:
        load_config(data={"site": {"latitude": 48.1, "longitude": 11.6, "timezone": "Europe/Berln"}})
    text = str(err.value)
    assert "site.timezone" in text and "Europe/Berln" in text and "Europe/Berlin" in text, text
    with pytest.raises(ConfigError, match="site.timezone"):
        load_config(data={"site": {"timezone": ""}})


@pytest.fixture
def computer_in_new_york(monkeypatch):
    from indisync.timezones import local_zone

    monkeypatch.setenv("TZ", "America/New_York")  # this process only; looked up afresh, then forgotten
    local_zone.cache_clear()
    yield
    local_zone.cache_clear()


def test_without_a_timezone_the_computers_zone(computer_in_new_york):
    assert SiteSettings().zone == NEW_YORK
    assert site_zone(load_config(data={})) == NEW_YORK  # no site: section at all
    assert site_zone(load_config(data={"site": {"latitude": 1.0}})) == NEW_YORK


# ---- finding the computer's zone -----------------------------------------------------------------
def test_the_computers_zone_from_tz_the_localtime_link_or_etc_timezone(tmp_path):
    nothing = str(tmp_path / "missing")
    assert computer_zone({"TZ": "Europe/Berlin"}, nothing, nothing) == (BERLIN, None)
    assert computer_zone({"TZ": ":America/New_York"}, nothing, nothing) == (NEW_YORK, None)
    assert computer_zone({"TZ": "/usr/share/zoneinfo/America/Los_Angeles"}, nothing, nothing)[0] == LOS_ANGELES
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Europe/Berlin")  # read as a name, the target need not exist here
    assert computer_zone({}, str(link), nothing) == (BERLIN, None)
    (tmp_path / "timezone").write_text("America/New_York\n")
    assert computer_zone({}, nothing, str(tmp_path / "timezone")) == (NEW_YORK, None)


def test_an_unknown_computer_zone_is_utc_with_a_note(tmp_path):
    nothing = str(tmp_path / "missing")
    zone, note = computer_zone({}, nothing, nothing)
    assert zone == timezone.utc and "site.timezone" in note and "Europe/Berlin" in note
    zone, note = computer_zone({"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}, nothing, nothing)  # POSIX rule, no name
    assert zone == timezone.utc and "TZ=" in note and "site.timezone" in note


# ---- the night log's date and the report's night -------------------------------------------------
def test_the_night_log_date_is_the_sites_not_the_containers():
    # 13:00 UTC on Dec 4 is 05:00 in Los Angeles: still the night of Dec 3 there; in UTC it is Dec 4's
    when = utc(2026, 12, 4, 13, 0)
    assert night_of(when, 12, LOS_ANGELES) == date(2026, 12, 3)
    assert night_of(when, 12, timezone.utc) == date(2026, 12, 4)
    # the morning after the clocks went forward: noon is CEST's
    assert night_of(utc(2026, 3, 29, 9, 45), 12, BERLIN) == date(2026, 3, 28)   # 11:45 CEST
    assert night_of(utc(2026, 3, 29, 10, 15), 12, BERLIN) == date(2026, 3, 29)  # 12:15 CEST


def test_the_writer_names_the_file_after_the_sites_night(tmp_path):
    writer = NightLogWriter(tmp_path, 12, fsync=False, zone=LOS_ANGELES)
    path = writer.append({"n": 1}, utc(2026, 12, 4, 13, 0))
    writer.close()
    assert path.name == "2026-12-03.jsonl"


def test_the_recording_follows_site_timezone(tmp_path):
    from indisync.record.service import NightRecording

    class Wire:
        def subscribe(self, topic, callback):
            pass

    from indisync.protocol.topics import Topics

    cfg = load_config(data={"site": {"latitude": 34.0, "longitude": -118.2, "timezone": "America/Los_Angeles"},
                            "record": {"directory": str(tmp_path)}})
    recording = NightRecording(cfg, Wire(), Topics("indisync"))
    try:
        assert recording.writer.zone == LOS_ANGELES
        assert recording.writer.path_for(utc(2026, 12, 4, 13, 0)).name == "2026-12-03.jsonl"
    finally:
        recording.close()


def _log_lines(t: datetime) -> str:
    rx = t.isoformat().replace("+00:00", "Z")
    return json.dumps({"rx": rx, "node": "m", "kind": "state", "type": "state",
                       "payload": {"role": "master", "phase": "idle"}}) + "\n"


def test_the_reports_night_and_window_are_on_the_sites_clock(tmp_path):
    from indisync.record.report import build, write_report

    log = tmp_path / "tonight.jsonl"  # not named after a date: the night comes from its entries
    log.write_text(_log_lines(utc(2026, 12, 4, 13, 0)))
    data = build(log, zone=LOS_ANGELES)
    assert data["night"] == "2026-12-03" and data["timezone"] == "America/Los_Angeles"
    assert build(log, zone=timezone.utc)["night"] == "2026-12-04"
    dated = tmp_path / "2026-12-03.jsonl"  # the writer's name is the night
    dated.write_text(_log_lines(utc(2026, 12, 4, 13, 0)))
    assert build(dated, zone=timezone.utc)["night"] == "2026-12-03"
    page = write_report(log, tmp_path / "out", zone=LOS_ANGELES).read_text()
    assert "Night of 2026-12-03" in page


def test_the_reports_window_in_local_time(tmp_path):
    from indisync.record.report import build

    log = tmp_path / "2026-10-24.jsonl"
    entries = [{"rx": "2026-10-24T17:00:00Z", "node": "m", "kind": "event", "type": "night_state",
                "payload": {"to": "imaging"}},
               {"rx": "2026-10-25T04:30:00Z", "node": "m", "kind": "event", "type": "night_state",
                "payload": {"to": "parked"}}]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    window = build(log, zone=BERLIN)["window"]
    assert window["start_local"] == "2026-10-24T19:00:00+02:00"
    assert window["end_local"] == "2026-10-25T05:30:00+01:00"  # after the clocks went back


def test_tzdata_is_available():
    # zoneinfo reads /usr/share/zoneinfo (Debian's tzdata) or, where that is missing, the tzdata wheel
    import importlib.util

    assert ZoneInfo("Europe/Berlin").utcoffset(datetime(2026, 7, 1)).total_seconds() == 7200
    assert importlib.util.find_spec("tzdata") is not None, "pip install tzdata (a dependency in pyproject.toml)"


def test_indisync_night_prints_the_site_wall_clock_beside_utc():
    """`indisync night` printed its windows in UTC only; the site's local time now stands beside it."""
    from types import SimpleNamespace

    from indisync.commands.night import render

    span = SimpleNamespace(start=datetime(2026, 12, 5, 17, 12, tzinfo=timezone.utc),
                           end=datetime(2026, 12, 6, 5, 40, tzinfo=timezone.utc), seconds=12.47 * 3600)
    windows = SimpleNamespace(dark=span, target=span, end_at=None, usable=span)
    text = render(windows, SiteSettings(latitude=48.0, longitude=11.0), "config", "M42", True, NightSettings(),
                  ZoneInfo("Europe/Berlin"))
    assert "dark     2026-12-05 17:12 UTC (18:12 CET) – 2026-12-06 05:40 UTC (06:40 CET)" in text, text
    utc = render(windows, SiteSettings(), "config", "M42", True, NightSettings(), ZoneInfo("UTC"))
    assert "17:12 UTC –" in utc and "(17:12" not in utc, utc
