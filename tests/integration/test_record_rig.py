"""The night on record, end to end on a real rig (indiservers, mosquitto, `indisync run` processes):

- the live dashboard in headless chromium shows both nodes, its progress bar moves, and a slave
  killed with kill -9 shows offline within 10 s (a screenshot is saved and its path printed);
- the night report the master writes at the end of its sequence agrees with the FITS files on
  disk: frames per node and filter, EXPTIME totals, and the real shutter-open time beside them.

Real time (time factor 1) with 4 s frames, so EXPTIME is the time the shutter was really open.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from indisync.config import MqttConfig
from indisync.dashboard.model import LiveModel
from indisync.dashboard.server import DashboardServer
from indisync.protocol.topics import Topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.report import by_node, read_frames
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EXPOSURE = 4.0


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,820"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def card(driver, node: str):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        el = driver.find_element(By.ID, f"node-{node}")
        fill = el.find_element(By.CSS_SELECTOR, "[data-role=progress]")
        width = float(fill.get_attribute("style").split("width:")[1].split("%")[0])
        return {"online": el.get_attribute("data-online") == "true", "progress": width,
                "phase": el.find_element(By.CSS_SELECTOR, "[data-role=phase]").text,
                "vcurve": bool(el.find_elements(By.CSS_SELECTOR, "svg[data-role=vcurve] circle"))}
    except (NoSuchElementException, StaleElementReferenceException, IndexError, ValueError):
        return None  # the page re-renders the cards on every update: read again


@pytest.mark.timeout(280)
@pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                    reason="Debian chromium + chromium-driver not installed (./scripts/setup.sh installs them)")
def test_dashboard_live_and_report_matches_files(tmp_path):
    rig = SimRig(record_section={"report": True}, slaves=1, time_factor=1.0, workdir=tmp_path / "rig",
                 master_section={"target": "M42", "batches": 1, "refocus": {"after_batch": True},
                                 "sequence": {"slots": [{"type": "light", "filter": "Luminance",
                                                         "exposure": EXPOSURE, "repeat": 4}]}},
                 slave_section={"filters": ["Red", "Green"], "exposure": EXPOSURE},
                 focus_section={"points": 5, "exposure": 0.5, "step": 400})
    driver = server = transport = None
    rig.start()
    try:
        mqtt = MqttConfig(host=rig.broker.host, port=rig.broker.port, keepalive=5, heartbeat=1.0, dead_after=5.0)
        model = LiveModel(Topics(), mqtt.dead_after)
        transport = MqttTransport(mqtt, client_id=f"dash-test-{uuid.uuid4().hex[:6]}")
        model.attach(transport)
        transport.start()
        server = DashboardServer(model, "127.0.0.1", 0).start()
        driver = browser()
        driver.get(f"http://127.0.0.1:{server.port}/")

        rig.start_slaves()
        rig.start_node("master")
        wait_until(lambda: all((card(driver, n) or {}).get("online") for n in ("master", "slave1")), 40,
                   "both nodes shown online")
        # The bar moves: two readings of the master's bar during one exposure, the second further on.
        first = wait_until(lambda: (c := card(driver, "master")) and 0 < c["progress"] < 50 and c, 60,
                           "master exposing with a progress bar")
        later = wait_until(lambda: (c := card(driver, "master")) and c["progress"] >= first["progress"] + 10 and c,
                           3.0, f"the master's bar moving on from {first['progress']} %", step=0.1)
        assert later["phase"] == "exposing", (first, later)
        driver.save_screenshot(str(tmp_path / "dashboard-exposing.png"))
        print(f"\ndashboard screenshot while exposing: {tmp_path / 'dashboard-exposing.png'}")

        assert rig.wait_node("master", 180) == 0, rig.logs()
        wait_until(lambda: (card(driver, "slave1") or {}).get("vcurve"), 20, "the slave's V-curve drawn")
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))
        print(f"\ndashboard screenshot: {shot}")

        # Home Assistant's image entities: each node's latest V-curve PNG, retained on the broker.
        images = {}
        viewer = MqttTransport(mqtt, client_id=f"ha-test-{uuid.uuid4().hex[:6]}")
        viewer.subscribe("indisync/+/image/+", lambda m: images.__setitem__(m.topic, (m.retain, m.payload)))
        viewer.start()
        try:
            wait_until(lambda: len(images) == 4, 10, "both nodes' retained V-curve PNGs and frame JPEGs")
        finally:
            viewer.stop()
        assert all(images[f"indisync/{n}/image/vcurve"][1][:4] == b"\x89PNG" for n in ("master", "slave1"))
        assert all(images[f"indisync/{n}/image/frame"][1][:2] == b"\xff\xd8" for n in ("master", "slave1"))
        assert all(retained for retained, _ in images.values())

        rig.kill_node("slave1")  # kill -9: no goodbye, only the heartbeat stops (and the broker's Last Will)
        killed = time.monotonic()
        wait_until(lambda: (c := card(driver, "slave1")) is not None and not c["online"], 10,
                   "killed slave shown offline")
        print(f"killed slave shown offline after {time.monotonic() - killed:.1f} s")
        driver.save_screenshot(str(tmp_path / "dashboard-offline.png"))
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.stop()
        if transport is not None:
            transport.stop()
        rig.stop()

    # ---- the report the master wrote at the end of its sequence, against the files -----------
    reports = list((rig.images / "master" / "nights").glob("report-*/report.json"))
    assert len(reports) == 1, rig.logs()
    report = json.loads(reports[0].read_text())
    print(f"night report: {reports[0].parent / 'index.html'}")
    frames = read_frames(rig.images)
    files = by_node(frames)
    assert set(files) == {"master", "slave1"}
    first_start = min(f.start for f in frames)
    last_end = max(f.start + timedelta(seconds=f.exptime) for f in frames)
    # The usable window is the night machine's observing time (from the slew and the guider's start
    # on), so it holds every frame.
    usable = report["window"]
    assert datetime.fromisoformat(usable["start"].replace("Z", "+00:00")) <= first_start.replace(tzinfo=timezone.utc)
    assert datetime.fromisoformat(usable["end"].replace("Z", "+00:00")) >= (
        last_end.replace(tzinfo=timezone.utc) - timedelta(seconds=1))
    window = usable["seconds"]
    for node, mine in files.items():
        got = report["nodes"][node]
        assert got["frames"] == len(mine) == 4
        assert got["frames_by_filter"] == dict(Counter(f.filter for f in mine))
        # shutter open is real time (exposure start to image arrival on the node's clock): at time
        # factor 1 at least EXPTIME, plus the download (< 1.5 s a frame here); EXPTIME is apart
        exptime = sum(f.exptime for f in mine)
        assert got["exptime_s"] == exptime and got["shutter_estimated"] == 0, (node, got)
        assert exptime - 0.1 * len(mine) <= got["shutter_open_s"] <= exptime + 1.5 * len(mine), (node, got)
        assert abs(got["shutter_open_pct"] - 100.0 * got["shutter_open_s"] / window) < 0.1, (node, got, window)
    assert report["nodes"]["slave1"]["frames_by_filter"] == {"Red": 2, "Green": 2}
    assert report["start_skew"]["slave1"]["pairs"] == 4
    assert len([r for r in report["autofocus"] if r["points"]]) == 2  # both nodes' V-curves on record
    assert all(name.endswith(".png") for name in report["figures"].values())
    assert (reports[0].parent / "index.html").read_text().count("data:image/png;base64,") >= 3
