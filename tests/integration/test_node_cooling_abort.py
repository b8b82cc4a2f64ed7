"""Cooling and abort on a real node process (`indisync run --role slave`, its own indiserver with the
CCD simulator, a private mosquitto), driven over MQTT as the master's night would drive it:

- `cool` reaches the setpoint (progress replies on the way, state fields, done within tolerance,
  read back from the simulator); a frame taken then carries CCD-TEMP and SET-TEMP;
- `cool` that cannot make it in time fails and names the temperature; `warm` answers at once;
- `abort` during an exposure ends it at once: the expose fails within a second, no file (partial
  or temporary) is left, and the rotation does not advance.

One rig serves the module; tests run in file order, each setting up what it needs.
"""

from __future__ import annotations

import time

import pytest
import yaml
from astropy.io import fits

from indisync.config import MqttConfig
from indisync.errors import CommandFailed
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.sim.indi import get_numbers
from indisync.sim.rig import SimRig
from tests.conftest import MqttCollector, master_command_client, stopped_at_the_end

pytestmark = pytest.mark.integration

NODE = "slave1"
FILTERS = ["Red", "Green", "Blue"]
EXPOSURE = 300.0  # simulated seconds: 3 s real at time factor 0.01
SETPOINT, TOLERANCE, WARM_TO = -4.0, 0.5, 10.0


@pytest.fixture(scope="module")
def rig(request, tmp_path_factory):
    rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path_factory.mktemp("rig"),
                 slave_section={"filters": FILTERS, "exposure": EXPOSURE})
    rig.start()
    with stopped_at_the_end(request, rig):
        path = rig.nodes[NODE].config_path
        config = yaml.safe_load(path.read_text())
        config["camera"] = {"cooling": {"setpoint": SETPOINT, "tolerance": TOLERANCE, "timeout": 60, "warm_to": WARM_TO}}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        rig.start_node(NODE)
        rig.wait_up(NODE, timeout=60)
        yield rig


@pytest.fixture(scope="module")
def wire(rig):
    cfg = MqttConfig(host=rig.broker.host, port=rig.broker.port)
    collector = MqttCollector(cfg, f"{cfg.topic_prefix}/#")
    collector.topics = Topics(cfg.topic_prefix, cfg.discovery_prefix)
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def master(rig):
    with master_command_client(MqttConfig(host=rig.broker.host, port=rig.broker.port)) as client:
        yield client


def sensor(rig) -> float:
    indi = rig.nodes[NODE].indi
    return get_numbers(indi.host, indi.port, "CCD Simulator", "CCD_TEMPERATURE")["CCD_TEMPERATURE_VALUE"]


def replies(wire, command_id: str) -> list[dict]:
    return [p for p in (messages.decode(m.payload, "reply").payload for m in wire.messages(wire.topics.reply(NODE)))
            if p["command_id"] == command_id]


def states(wire) -> list[dict]:
    return [messages.decode(m.payload, "state").payload for m in wire.messages(wire.topics.state(NODE))]


def events(wire, type_: str) -> list[dict]:
    out = []
    for m in wire.messages(wire.topics.event(NODE)):
        env = messages.decode(m.payload, "event")
        if env.type == type_:
            out.append(env.payload)
    return out


def test_cool_reaches_the_setpoint_with_progress_and_frame_headers(rig, wire, master):
    start = sensor(rig)
    assert abs(start - SETPOINT) > 2, f"the simulator already sits at {start} C: nothing to prove"
    pending = master.send(NODE, "cool", {})  # setpoint, tolerance and timeout from the node's config
    result = pending.result(90)
    assert result["reached"] is True and result["setpoint"] == SETPOINT
    assert abs(result["temperature"] - SETPOINT) <= TOLERANCE
    assert abs(sensor(rig) - SETPOINT) <= TOLERANCE + 0.5  # read back from the simulator itself
    progress = [r for r in replies(wire, pending.id) if r["status"] == "progress"]
    assert progress, "no progress replies while cooling"
    assert all(r["result"]["setpoint"] == SETPOINT and r["result"]["temperature"] is not None for r in progress)
    temps = [r["result"]["temperature"] for r in progress]
    assert temps[0] > temps[-1] or len(temps) == 1  # going down
    assert wire.wait_for(lambda: (s := states(wire)[-1])["cooling"] is not None and s["cooling"]["reached"]
                         and s["cooling"]["setpoint"] == SETPOINT and s["cooling"]["eta_s"] == 0
                         and abs(s["temperature"] - SETPOINT) <= TOLERANCE, 5), states(wire)[-1]
    assert any(s["cooling"] and not s["cooling"]["reached"] and s["cooling"]["eta_s"] for s in states(wire)), \
        "no state while cooling said how long it would take"

    shot = master.call(NODE, "expose", {"duration": EXPOSURE, "target": "M42"}, timeout=60)
    header = fits.getheader(rig.images / NODE / shot["files"][0])
    assert header["SET-TEMP"] == SETPOINT
    assert abs(header["CCD-TEMP"] - sensor(rig)) <= 0.5 and abs(header["CCD-TEMP"] - SETPOINT) <= TOLERANCE


def test_cool_that_cannot_make_it_fails_with_the_temperature_then_warm_answers_at_once(rig, wire, master):
    with pytest.raises(CommandFailed, match=r"not reached within 2 s: the sensor is at -?\d+\.\d C"):
        master.call(NODE, "cool", {"setpoint": -30, "timeout": 2}, timeout=30)
    started = time.monotonic()
    result = master.call(NODE, "warm", {}, timeout=10)
    assert time.monotonic() - started < 3.0, "warm must not wait for the sensor"
    assert result["setpoint"] == WARM_TO
    assert wire.wait_for(lambda: (s := states(wire)[-1])["cooling"] and s["cooling"]["setpoint"] == WARM_TO
                         and not s["cooling"]["reached"], 5)
    before = sensor(rig)
    deadline = time.monotonic() + 10
    while sensor(rig) <= before + 0.5 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert sensor(rig) > before + 0.5, "the sensor did not warm up towards warm_to"


def test_abort_during_an_exposure_ends_it_at_once_writes_nothing_and_keeps_the_rotation(rig, wire, master):
    images = rig.images / NODE
    files_before = {p for p in images.rglob("*") if p.is_file() and ".indisync" not in p.parts}
    state_before = states(wire)[-1]
    next_filter = state_before["filter"]  # the wheel waits on the rotation's next filter
    long_exposure = 1000.0  # 10 s real: the abort comes long before its end
    config = yaml.safe_load(rig.nodes[NODE].config_path.read_text())
    assert config["slave"]["exposure"] == EXPOSURE

    done_before = len(events(wire, "exposure_done"))
    pending = master.send(NODE, "expose", {"duration": long_exposure, "target": "Abort"})
    assert wire.wait_for(lambda: any(e["filter"] == next_filter and e["exposure_id"] for e in events(wire, "exposure_started")
                                     if e["duration"] == EXPOSURE) and states(wire)[-1]["phase"] == "exposing", 15)
    time.sleep(1.0)  # well into the 3 s exposure
    aborted_at = time.monotonic()
    master.call(NODE, "abort", {"reason": "test"}, timeout=10)
    final = pending.wait(10)
    took = time.monotonic() - aborted_at
    print(f"\nexpose answered {took:.2f} s after the abort was sent: {final['status']}: {final.get('reason')}")
    assert final["status"] == "failed" and "abort" in final["reason"]
    assert took < 1.5, "the exposure did not end at once"
    # the exposure_done event may reach us a moment after the reply: wait for it, never take the last
    # test's event for this one
    assert wire.wait_for(lambda: len(events(wire, "exposure_done")) > done_before, 5), "no exposure_done"
    done = events(wire, "exposure_done")[done_before]
    assert done["status"] == "aborted" and done["filter"] == next_filter and done["file"] is None

    time.sleep(EXPOSURE * 0.01 + 1.0)  # past the exposure's natural end: a late image must not be written
    files_after = {p for p in images.rglob("*") if p.is_file() and ".indisync" not in p.parts}
    assert files_after == files_before, f"aborted frame left files: {sorted(files_after - files_before)}"
    leftovers = [p for p in images.rglob("*") if p.name.endswith((".tmp", ".part")) or p.name.startswith(".tmp")]
    assert not leftovers
    assert states(wire)[-1]["frames"] == state_before["frames"]

    # The rotation did not advance: the next frame uses the filter the aborted one would have had.
    shot = master.call(NODE, "expose", {"duration": EXPOSURE, "target": "Abort"}, timeout=60)
    assert shot["filters"] == [next_filter]
    assert fits.getheader(images / shot["files"][0])["FILTER"] == next_filter


def test_an_abort_that_overtakes_its_expose_is_not_wiped_and_nothing_is_taken(rig, wire, master):
    """Rain a moment after the master ordered a frame: the abort (its own fast lane) can reach the
    slave before the expose starts. The expose must not start then (it used to clear the abort flag
    and take the whole frame in the rain)."""
    from datetime import datetime, timedelta, timezone

    images = rig.images / NODE
    files_before = {p for p in images.rglob("*") if p.is_file() and ".indisync" not in p.parts}
    now = datetime.now(timezone.utc)
    ordered, aborted = now - timedelta(seconds=1.0), now  # the expose was sent first, the abort after it
    clock = master._clock_iso
    try:
        master._clock_iso = lambda: messages.now_iso(aborted)
        master.call(NODE, "abort", {"reason": "rain"}, timeout=10)  # ...but the abort arrives first
        master._clock_iso = lambda: messages.now_iso(ordered)
        final = master.send(NODE, "expose", {"duration": EXPOSURE, "target": "Overtaken"}).wait(30)
    finally:
        master._clock_iso = clock
    assert final["status"] == "failed" and "before it started" in final["reason"], final
    time.sleep(EXPOSURE * 0.01 + 1.0)
    files_after = {p for p in images.rglob("*") if p.is_file() and ".indisync" not in p.parts}
    assert files_after == files_before, f"a frame was taken after its abort: {sorted(files_after - files_before)}"
    # the next frame, ordered after the abort, is taken as usual
    shot = master.call(NODE, "expose", {"duration": EXPOSURE, "target": "Overtaken"}, timeout=60)
    assert len(shot["files"]) == 1
