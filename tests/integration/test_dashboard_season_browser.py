"""The dashboard's season panel in headless chromium (issue 16, item 6): the master's target, since
when and why, and per OTA and filter accepted / desired, rejected, pending and surplus; names and
the scheduler's words shown as text (a filter named like an HTML tag stays text); the panel follows
the master live (a switch to the next target) and is hidden when the master has no season.

No INDI and no broker: the master's state is handed to the dashboard's model as paho would (what the
master publishes is tested with the night); the HTTP server and the browser are real."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from indisync.dashboard.model import LiveModel
from indisync.dashboard.server import DashboardServer
from indisync.dashboard.settings import DashboardSettings
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.protocol.transport import Incoming
from indisync.sim.waiting import wait_until
from tests.integration.test_record_rig import CHROMEDRIVER, CHROMIUM, browser

pytestmark = pytest.mark.integration

NOW = datetime(2027, 3, 12, 21, 30, tzinfo=timezone.utc)
EVIL = '<img src=x onerror="window.pwned=1">'


def counts(desired, accepted, rejected=0, pending=0, surplus=0) -> dict:
    return {"desired": desired, "accepted": accepted, "rejected": rejected, "pending": pending, "surplus": surplus}


def master_state(season: dict | None) -> bytes:
    payload = {"role": "master", "phase": "imaging", "version": "x", "frames": 3}
    if season is not None:
        messages.STATE["season"].check(season, "season")  # as the master publishes it
        payload["season"] = season
    return json.dumps({"v": 1, "type": "state", "id": "a1", "from": "ota1", "ts": messages.now_iso(),
                       "payload": payload}).encode()


def panel(driver) -> dict | None:
    return driver.execute_script("""
        const box=document.getElementById("season");if(!box)return null;
        const q=r=>box.querySelector('[data-role="'+r+'"]');
        const rows=[...box.querySelectorAll("tr[data-filter]")].map(tr=>({node:tr.closest("[data-node]").dataset.node,
          filter:tr.dataset.filter,accepted:+tr.dataset.accepted,desired:+tr.dataset.desired,rejected:+tr.dataset.rejected,
          pending:+tr.dataset.pending,surplus:+tr.dataset.surplus,text:tr.innerText}));
        return {hidden:box.hidden,line:q("season-line").innerText,target:q("season-line").dataset.target,
                reason:q("season-reason").innerText,candidates:q("season-candidates").innerText,rows:rows,
                imgs:box.querySelectorAll("img").length,pwned:window.pwned===1};""")


@pytest.mark.timeout(90)
@pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                    reason="Debian chromium + chromium-driver not installed (./scripts/setup.sh installs them)")
def test_season_panel_live_in_the_browser():
    model = LiveModel(Topics(), 3600.0, wall=lambda: NOW, zone="Europe/Berlin")
    send = lambda season: model.on_message(Incoming("indisync/ota1/state", master_state(season), False))  # noqa: E731
    model.on_message(Incoming("indisync/ota1/status", b"online", False))
    send(None)
    server = DashboardServer(model, settings=DashboardSettings(port=0)).start()
    driver = None
    try:
        driver = browser()
        driver.get(f"http://127.0.0.1:{server.port}/")
        wait_until(lambda: (panel(driver) or {}).get("hidden") is True, 20, "the season panel hidden (no season)",
                   detail=lambda: str(panel(driver)))
        assert "ota1" in driver.execute_script("return document.getElementById('nodes').innerText")

        send({"target": "M51", "project": "spring", "since": messages.now_iso(NOW - timedelta(minutes=49)),
              "reason": "M51: highest score 2.31 <b>not bold</b>", "complete": False,
              "progress": {"ota1": {"Luminance": counts(60, 12, 3, 1)},
                           "ota2": {"Red": counts(20, 20, 2, 0, 4), EVIL: counts(20, 7)}},
              "candidates": [{"target": "M101", "score": 1.7, "excluded_by": None},
                             {"target": "M81", "score": None, "excluded_by": "altitude 24.1° < 30°"}]})
        wait_until(lambda: (panel(driver) or {}).get("target") == "M51", 20, "the season panel on M51",
                   detail=lambda: str(panel(driver)))
        p = panel(driver)
        assert not p["hidden"] and p["line"] == "M51 (spring) · since 21:41 (49 min ago)"
        assert p["reason"] == "why: M51: highest score 2.31 <b>not bold</b>"  # as text
        assert p["candidates"] == "other candidates: M101: score 1.70 · M81: excluded — altitude 24.1° < 30°"
        rows = {(r["node"], r["filter"]): r for r in p["rows"]}
        assert set(rows) == {("ota1", "Luminance"), ("ota2", "Red"), ("ota2", EVIL)}
        lum, red = rows[("ota1", "Luminance")], rows[("ota2", "Red")]
        assert (lum["accepted"], lum["desired"], lum["rejected"], lum["pending"]) == (12, 60, 3, 1)
        assert "12/60 accepted · 3 rejected · 1 pending" in lum["text"]
        assert (red["surplus"], "20/20 accepted (met)" in red["text"]) == (4, True)
        assert EVIL in rows[("ota2", EVIL)]["text"] and p["imgs"] == 0 and not p["pwned"]

        # the master switches: the panel follows without a reload
        send({"target": "M101", "project": "spring", "since": messages.now_iso(NOW), "reason": "M51 complete",
              "complete": False, "progress": {"ota1": {"Luminance": counts(5, 0)}}, "candidates": []})
        wait_until(lambda: (panel(driver) or {}).get("target") == "M101", 20, "the season panel on M101",
                   detail=lambda: str(panel(driver)))
        p = panel(driver)
        assert [r["filter"] for r in p["rows"]] == ["Luminance"] and p["candidates"] == ""
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
