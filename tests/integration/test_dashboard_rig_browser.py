"""The dashboard's rig panel in headless chromium during rain (issue 20, item 5), on a real master
(`indisync run`) with the INDI Telescope, Weather and Dome Simulators and a private mosquitto:

- the master images at local midnight (site chosen from the clock); its first frame's 480 px
  preview shows on its card (the JPEG it publishes for Home Assistant, served by the dashboard);
- rain in the Weather Simulator (read back): the panel shows the weather UNSAFE with since when in
  the site's local time, the mount parked, the dome's shutter closed, the guard armed, the verdict
  "closed up for the weather", and a night line in words with local times (no ISO timestamps);
- a malformed retained state of another node (exposure.duration "300", the defect that made
  /api/state answer 500 and killed every stream) is blanked and said on that node's card only;
- the page is reached with the dashboard's password as ``?token=`` (a phone's bookmark), and
  /api/state without it answers 401.

The guard's state is published by this test as the guard publishes it (its retained
``guard_state`` and ``online`` status): the guard process is tested in its own files. A screenshot
is saved in the test's temp directory and its path printed (pytest -s).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import urllib.error
import urllib.request
import uuid

import pytest

from indisync.config import MqttConfig
from indisync.dashboard.model import LiveModel
from indisync.dashboard.server import DashboardServer
from indisync.dashboard.settings import DashboardSettings
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.indi import set_precipitation
from indisync.sim.night import (DOME, LATITUDE, WEATHER, longitude_for_local_hour, mount_parked_now, prepare_dome,
                                prepare_mount, shutter_closed, target_east_high)
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until
from tests.integration.test_record_rig import CHROMEDRIVER, CHROMIUM, browser

pytestmark = pytest.mark.integration

PASSWORD = "rain-on-the-roof"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def rig_panel(driver) -> dict | None:
    """The rig panel as one snapshot of the page (one script: the live stream may re-render between
    separate element reads, and the Dome Simulator's shutter reads moving again while the dome parks)."""
    return driver.execute_script("""
        const box=document.getElementById("rig"), night=document.getElementById("night");
        if(!box||!night)return null;
        const row=r=>box.querySelector('[data-role="'+r+'"]');
        const out={level:box.className,night:night.innerText};
        for(const r of ["verdict","weather","mount","dome","guard","zone"]){const e=row(r);if(!e)return null;out[r]=e.innerText;}
        out.safe=row("weather").getAttribute("data-safe");out.parked=row("mount").getAttribute("data-parked");
        out.shutter=row("dome").getAttribute("data-shutter");out.guards=row("guard").getAttribute("data-guards");
        return out;""")


def preview_loaded(driver, node: str) -> bool:
    return bool(driver.execute_script(
        "const i=document.querySelector('#node-'+arguments[0]+' img[data-role=preview]');"
        "return i!==null&&i.complete&&i.naturalWidth>0;", node))


def card_text(driver, node: str) -> str:
    return driver.execute_script("const c=document.getElementById('node-'+arguments[0]);return c?c.innerText:'';", node)


@pytest.mark.timeout(240)
@pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                    reason="Debian chromium + chromium-driver not installed (./scripts/setup.sh installs them)")
def test_rig_panel_in_the_rain_with_a_bad_retained_state(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    rig = SimRig(slaves=0, time_factor=1.0, workdir=tmp_path / "rig",
                 master_drivers=("indi_simulator_weather", "indi_simulator_dome"),
                 master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0,
                                           "timezone": "Europe/Berlin"},
                                  "night": {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False},
                                  "indi": {"weather": WEATHER, "dome": DOME},
                                  "safety": {"safe_for": 600.0, "stale_after": 10.0, "poll": 0.2}},
                 master_section={"target": {"name": "RAIN", "ra": ra, "dec": dec}, "batches": None,
                                 "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 2.0,
                                                         "repeat": 50}]},
                                 "refocus": {"after_batch": False}})
    driver = server = transport = other = None
    quiet = threading.Event()
    rig.start()
    try:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec, weather=True)
        prepare_dome(indi)
        mqtt = MqttConfig(host=rig.broker.host, port=rig.broker.port, keepalive=5, heartbeat=1.0, dead_after=5.0)
        topics = Topics()
        # What other processes left on the broker: the guard's retained state and status, and a node
        # whose retained state is malformed (exposure.duration a string).
        other = MqttTransport(mqtt, client_id=f"others-{uuid.uuid4().hex[:6]}")
        other.start()
        assert other.wait_connected(10)
        guard_payload = {"state": "armed", "since": messages.now_iso(), "reason": None, "rig_safe": None,
                         "unsafe": False, "weather": {"safe": True, "age_s": 1.0}, "mount": {"parked": None},
                         "dome": {"closed": None}, "sun_alt_deg": -40.0, "master_online": True, "last_action": None}
        other.publish(topics.guard("guard", "status"), b"online", retain=True)

        def guard_speaks() -> None:  # as the guard does: its state again every few seconds
            while not quiet.is_set():
                other.publish(topics.guard("guard", "state"), json.dumps(
                    {"v": 1, "type": "guard_state", "id": uuid.uuid4().hex[:16], "from": "guard",
                     "ts": messages.now_iso(), "payload": guard_payload}).encode(), retain=True)
                quiet.wait(3.0)

        threading.Thread(target=guard_speaks, name="test-guard", daemon=True).start()
        other.publish(topics.status("ota9"), b"online", retain=True)
        other.publish(topics.state("ota9"), json.dumps(
            {"v": 1, "type": "state", "id": "b1", "from": "ota9", "ts": messages.now_iso(),
             "payload": {"role": "slave", "phase": "exposing", "version": "x", "frames": 4, "filter": "Red",
                         "exposure": {"id": "7", "filter": "Red", "start": messages.now_iso(), "duration": "300",
                                      "progress": 0.1}}}).encode(), retain=True)

        model = LiveModel(topics, mqtt.dead_after)
        transport = MqttTransport(mqtt, client_id=f"dash-{uuid.uuid4().hex[:6]}")
        model.attach(transport)
        transport.start()
        (tmp_path / "dashboard.pass").write_text(PASSWORD + "\n")
        server = DashboardServer(model, settings=DashboardSettings(
            port=0, password_file=str(tmp_path / "dashboard.pass"))).start()
        base = f"http://127.0.0.1:{server.port}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/state", timeout=10)
        assert refused.value.code == 401
        driver = browser()
        driver.get(f"{base}/?token={PASSWORD}")

        rig.start_node("master")
        wait_until(lambda: "(JNow)" in ((rig_panel(driver) or {}).get("mount") or ""), 60,
                   "the master's rig state on the page", detail=rig.logs)
        wait_until(lambda: preview_loaded(driver, "master"), 120, "the master's latest frame preview shown",
                   detail=rig.logs)

        set_precipitation(indi.host, indi.port, 10)
        wait_until(lambda: mount_parked_now(indi) and shutter_closed(indi), 60,
                   "the master parking and closing in the rain (read back)", detail=rig.logs)
        panel = wait_until(lambda: (p := rig_panel(driver)) and p["safe"] == "false" and p["parked"] == "true"
                           and p["shutter"] == "closed" and p["level"] == "ok" and p, 30,
                           "the rain shown on the rig panel (the dome parked)", detail=lambda: f"{rig_panel(driver)}\n{rig.logs()}")
        driver.save_screenshot(str(tmp_path / "dashboard-rain.png"))
        print(f"\ndashboard screenshot in the rain: {tmp_path / 'dashboard-rain.png'}\n{json.dumps(panel, indent=1)}")

        assert panel["weather"].startswith("UNSAFE — alert:") and "rain" in panel["weather"].lower()
        assert re.search(r"since (\w{3} )?\d\d:\d\d \((now|\d+ min ago)\)", panel["weather"]), panel["weather"]
        assert panel["mount"].startswith("parked") and "alt " in panel["mount"], panel["mount"]
        assert panel["dome"].startswith("shutter closed"), panel["dome"]
        assert panel["guards"] == "guard:armed" and "armed (watching)" in panel["guard"], panel["guard"]
        assert "hung?" not in panel["guard"], panel["guard"]
        assert panel["level"] == "ok" and panel["verdict"] == "closed up for the weather", panel
        assert panel["zone"].startswith("times in Europe/Berlin"), panel["zone"]
        assert panel["night"].startswith("night: ") and not ISO.search(panel["night"]), panel["night"]
        assert "since" in panel["night"], panel["night"]

        bad = card_text(driver, "ota9")
        assert "ignored from this node" in bad and "exposure" in bad and "'300'" in bad, bad
        assert "online" in card_text(driver, "master")
        state = json.loads(urllib.request.urlopen(f"{base}/api/state?token={PASSWORD}", timeout=10).read())
        ota9 = next(n for n in state["nodes"] if n["name"] == "ota9")
        assert ota9["exposure"] is None and ota9["frames"] == 4  # only the bad field blanked
        assert driver.execute_script("return document.getElementById('conn').textContent") == "live"
    finally:
        quiet.set()
        if driver is not None:
            driver.quit()
        if server is not None:
            server.stop()
        for t in (transport, other):
            if t is not None:
                t.stop()
        rig.stop()
