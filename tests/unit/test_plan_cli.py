"""`indisync plan` on a temporary season database (fixed dates, astropy offline), and its views."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from indisync.cli import main
from indisync.night.settings import SiteSettings
from indisync.season.ephem import sky_for_night
from indisync.season.model import Constraints, PlanLine, Progress, Project, Target
from indisync.season.planview import build_view, draw_timeline, render
from indisync.season.scheduler import plan_night
from indisync.season.settings import SchedulerSettings
from indisync.season.store import SeasonStore

SITE = SiteSettings(latitude=48.0, longitude=11.0, elevation=500.0, timezone="Europe/Berlin")


def targets() -> list[Target]:
    lum = PlanLine("ota1", "Luminance", 300, 6)
    return [
        Target("spring", "M51", 202.47, 47.2, (lum, PlanLine("ota3", "Ha", 300, 4)), priority=6),
        Target("spring", "M35", 92.0, 24.0, (lum,), priority=8),
        Target("spring", "M13", 250.42, 36.46, (lum,), constraints=Constraints(before_flip=True)),
        Target("spring", "Gone", 202.47, 47.2, (lum,), end_date="2027-02-01"),
    ]


@pytest.fixture
def config(tmp_path):
    data = tmp_path / "data"
    with SeasonStore(data / "indisync.db") as store:
        store.add_project(Project("spring", priority=5))
        for t in targets():
            store.add_target(t)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"site: {{latitude: 48.0, longitude: 11.0, elevation: 500, timezone: Europe/Berlin}}\n"
                   f"storage: {{directory: {data}}}\nscheduler: {{min_altitude: 30}}\n")
    return cfg


def test_plan_json_names_blocks_and_every_candidate(config, capsys):
    assert main(["plan", "--config", str(config), "--date", "2027-03-01", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["night"]["date"] == "2027-03-01"
    assert [b["target"] for b in view["blocks"]][:1] == ["M35"]  # the highest priority, setting first
    imaged = {b["target"] for b in view["blocks"]}
    assert {"M35", "M51", "M13"} <= imaged and "Gone" not in imaged
    words = {c["target"]: c for c in view["candidates"]}
    assert set(words) == {"M51", "M35", "M13", "Gone"}
    assert words["Gone"]["excluded_by"] == "after its end date 2027-02-01"
    assert words["M35"]["score"] is not None and "urgency" in words["M35"]["parts"]
    assert words["M13"]["excluded_by"].startswith("altitude ")
    m51 = [b for b in view["blocks"] if b["target"] == "M51"]
    assert sum(b["frames"].get("ota3", {}).get("Ha", 0) for b in m51) == 4
    assert all(b["why"] for b in view["blocks"])
    assert view["decisions"][-1]["why"].endswith("every target is complete") or view["decisions"][-1]["target"] is None


def test_plan_table_and_png(config, tmp_path, capsys):
    png = tmp_path / "night.png"
    assert main(["plan", "--config", str(config), "--date", "2027-03-01", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "night of 2027-03-01" in out and "Europe/Berlin" in out
    assert "candidates at" in out and "after its end date 2027-02-01" in out
    assert "why: M35: highest score" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # written atomically


def test_plan_needs_a_site(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"storage: {{directory: {tmp_path}}}\n")
    assert main(["plan", "--config", str(cfg), "--date", "2027-03-01"]) == 2
    assert "needs the site: add site:" in capsys.readouterr().err


def test_plan_without_a_database_says_how_to_make_one(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"site: {{latitude: 48.0, longitude: 11.0, timezone: Europe/Berlin}}\n"
                   f"storage: {{directory: {tmp_path / 'none'}}}\n")
    assert main(["plan", "--config", str(cfg), "--date", "2027-03-01"]) == 2
    err = capsys.readouterr().err
    assert "no season database at" in err and "indisync targets" in err


def test_plan_bad_date(config, capsys):
    assert main(["plan", "--config", str(config), "--date", "01/03/2027"]) == 2
    assert "expected YYYY-MM-DD" in capsys.readouterr().err


def test_views_from_objects(tmp_path):
    sky = sky_for_night(SITE, datetime(2027, 3, 1, 12, tzinfo=timezone.utc).timestamp())
    settings = SchedulerSettings()
    ts = targets()
    progress = {"M51": Progress.for_target(ts[0])}
    progress["M51"].get("ota1", "Luminance").accepted = 6  # ota1 done: its frames are surplus now
    plan = plan_night(ts, progress, sky, settings)
    text = render(plan, sky, settings, SITE, SITE.zone)
    assert "Luminance +" in text and "surplus" in text  # ota1 on M51: surplus beside ota3's Ha
    view = build_view(plan, sky, settings, SITE, SITE.zone)
    json.dumps(view)
    assert view["night"]["dark"]["sun_below"] == -18.0
    canvas = draw_timeline(plan, sky, ts, settings, SITE.zone, tmp_path / "t.png")
    assert canvas.image.size == (900, 500)
    assert (tmp_path / "t.png").stat().st_size > 1000
