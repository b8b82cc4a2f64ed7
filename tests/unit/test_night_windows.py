"""Site and windows with astropy, offline: known dusk/dawn times, the target's altitude window,
end_at, polar summer, the site cross-check, and the import rule (astropy only where used)."""

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from indisync.astro.site import (altitude_now, compare_sites, date_start, night_windows, resolve_end_at,
                                 sun_altitudes)
from indisync.night.settings import NightSettings, SiteSettings, TargetSettings

MUNICH = SiteSettings(latitude=48.14, longitude=11.58, elevation=520)
M31 = TargetSettings(name="M31", ra=10.6847, dec=41.2690)


def near(a: datetime, b: datetime, minutes: float = 3.0) -> bool:
    return abs((a - b).total_seconds()) <= minutes * 60


def test_nautical_dusk_and_dawn_in_munich():
    # USNO / timeanddate: Munich 2026-12-03 nautical twilight ends 17:40 CET, 2026-12-04 begins 06:30 CET.
    w = night_windows(MUNICH, NightSettings(), None, date_start(MUNICH, date(2026, 12, 3)))
    assert near(w.dark.start, datetime(2026, 12, 3, 16, 40, tzinfo=timezone.utc), 5)
    assert near(w.dark.end, datetime(2026, 12, 4, 5, 30, tzinfo=timezone.utc), 5)
    assert w.usable.start == w.dark.start and w.usable.end == w.dark.end


def test_the_sun_crosses_the_thresholds_at_the_window_edges():
    from astropy.time import Time

    w = night_windows(MUNICH, NightSettings(start_sun_altitude=-12, end_sun_altitude=-6), None,
                      date_start(MUNICH, date(2026, 12, 3)))
    alts = sun_altitudes(MUNICH, Time([w.dark.start, w.dark.end]))
    assert alts[0] == pytest.approx(-12, abs=0.05) and alts[1] == pytest.approx(-6, abs=0.05)


def test_target_window_ends_when_it_sinks_below_min_altitude():
    w = night_windows(MUNICH, NightSettings(min_altitude=30), M31, date_start(MUNICH, date(2026, 12, 3)))
    assert w.target is not None and w.target.end < w.dark.end
    assert altitude_now(MUNICH, M31.ra, M31.dec, w.target.end) == pytest.approx(30, abs=0.1)
    assert altitude_now(MUNICH, M31.ra, M31.dec, w.target.end - timedelta(minutes=10)) > 30
    assert w.usable.end == w.target.end


def test_a_target_that_never_rises_gives_no_usable_window():
    south = TargetSettings(name="SMC", ra=13.19, dec=-72.83)
    w = night_windows(MUNICH, NightSettings(), south, date_start(MUNICH, date(2026, 12, 3)))
    assert w.target is None and w.usable is None


def test_end_at_cuts_the_window():
    end = "2026-12-03T22:00:00Z"
    w = night_windows(MUNICH, NightSettings(end_at=end), None, date_start(MUNICH, date(2026, 12, 3)))
    assert w.usable.end == datetime(2026, 12, 3, 22, 0, tzinfo=timezone.utc)
    assert w.dark.end > w.usable.end


def test_end_at_hhmm_is_the_next_such_local_time():
    after = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
    when = resolve_end_at("05:30", after)
    local = when.astimezone()
    assert (local.hour, local.minute) == (5, 30) and timedelta(0) < when - after <= timedelta(days=1)


def test_polar_summer_has_no_dark():
    svalbard = SiteSettings(latitude=78.2, longitude=15.6)
    w = night_windows(svalbard, NightSettings(), None, date_start(svalbard, date(2026, 6, 21)))
    assert w.dark is None and w.usable is None


def test_already_dark_starts_now():
    now = datetime(2026, 12, 3, 22, 0, tzinfo=timezone.utc)
    w = night_windows(MUNICH, NightSettings(), None, now)
    assert w.dark.start == now and w.usable.start == now


def test_site_mismatch_is_reported_beyond_a_hundredth_of_a_degree():
    assert compare_sites(MUNICH, (48.14, 11.58, 520)) is None
    assert compare_sites(MUNICH, (48.145, 11.585 + 360, 0)) is None  # INDI's 0..360 east
    assert "GEOGRAPHIC_COORD" in compare_sites(MUNICH, (48.16, 11.58, 520))
    assert compare_sites(SiteSettings(latitude=0, longitude=-70.0), (0.0, 290.0, 0)) is None
    assert compare_sites(MUNICH, None) is None


def test_windows_are_json_ready():
    w = night_windows(MUNICH, NightSettings(), M31, date_start(MUNICH, date(2026, 12, 3)))
    data = json.loads(json.dumps(w.to_dict()))
    assert data["usable"]["from"].endswith("Z") and data["usable"]["seconds"] > 3600


def test_night_command_prints_the_windows(tmp_path, capsys):
    from indisync.cli import main

    cfg = tmp_path / "night.yaml"
    cfg.write_text("site: {latitude: 48.14, longitude: 11.58, elevation: 520}\n"
                   "night: {min_altitude: 30}\n"
                   "master: {target: {name: M31, ra: 10.6847, dec: 41.2690}}\n")
    assert main(["night", "--config", str(cfg), "--date", "2026-12-03"]) == 0
    out = capsys.readouterr().out
    assert "dark     2026-12-03 16:" in out and "M31 above 30°" in out and "usable" in out and " h " in out
    assert main(["night", "--config", str(cfg), "--date", "2026-12-03", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["site"]["from"] == "config" and data["target_name"] == "M31" and data["usable"]["seconds"] > 0
    assert main(["night", "--config", str(cfg), "--date", "3.12.2026"]) == 2


def test_import_rule_astropy_only_where_used():
    """None of the night's modules imports astropy at module level (only inside the functions that
    use it); the rest of the package is the footprint issue's."""
    import ast
    import importlib
    import inspect

    for name in ("indisync.night.machine", "indisync.night.settings", "indisync.astro.site",
                 "indisync.night.executor", "indisync.night.planning", "indisync.commands.night", "indisync.commands.stop"):
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.split(".")[0] in ("astropy", "numpy", "PyIndi", "paho")], (name, names)
