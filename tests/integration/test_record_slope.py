"""The night report learns the focus-temperature slope from the night itself.

A master-only rig refocuses after every frame. After each autofocus the test (only the test:
code under test never reads SIM_FOCUSING) moves the Focuser Simulator's FOCUS_TEMPERATURE and
the CCD Simulator's true focus by an injected slope, reading both back. The report the master
writes at the end must find that slope within 20 %.
"""

from __future__ import annotations

import json
import uuid

import pytest

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.indi import get_numbers, set_number
from indisync.sim.rig import SIM_FOCUS_MAX, SimRig

pytestmark = pytest.mark.integration

SLOPE = -80.0  # steps per degC: a refractor's focus moving out as the night cools
TEMPERATURES = [12.0, 7.0, 2.0]


def _set_checked(indi, device, prop, values):
    set_number(indi.host, indi.port, device, prop, values)
    now = get_numbers(indi.host, indi.port, device, prop)
    assert all(abs(now[k] - v) < 1e-6 for k, v in values.items()), f"{prop}: asked {values}, simulator has {now}"


@pytest.mark.timeout(240)
def test_report_learns_the_injected_temperature_slope(tmp_path):
    rig = SimRig(record_section={"report": True}, slaves=0, time_factor=1.0, workdir=tmp_path / "rig",
                 focus_offset=(100, 200),
                 master_section={"target": "M42", "batches": 1,
                                 "refocus": {"after_batch": True, "every_frames": 1},
                                 "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 1.0,
                                                         "repeat": len(TEMPERATURES)}]}},
                 focus_section={"points": 7, "exposure": 0.5, "step": 300})
    transport = None
    rig.start()
    try:
        master = rig.nodes["master"]
        indi, base = master.indi, master.true_focus
        applied: list[tuple[float, float]] = []
        errors: list[BaseException] = []

        def inject(k: int) -> None:
            temperature = TEMPERATURES[k]
            truth = round(base + SLOPE * (temperature - TEMPERATURES[0]))
            _set_checked(indi, "Focuser Simulator", "FOCUS_TEMPERATURE", {"TEMPERATURE": temperature})
            _set_checked(indi, "CCD Simulator", "SIM_FOCUSING",
                         {"SIM_FOCUS_POSITION": truth, "SIM_FOCUS_MAX": SIM_FOCUS_MAX, "SIM_SEEING": 3.0})
            applied.append((temperature, truth))

        def on_event(msg) -> None:  # after each autofocus: the next temperature and true focus
            try:
                env = messages.decode(msg.payload)
                if env.type == "autofocus_done" and len(applied) < len(TEMPERATURES):
                    inject(len(applied))
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        mqtt = MqttConfig(host=rig.broker.host, port=rig.broker.port)
        transport = MqttTransport(mqtt, client_id=f"slope-test-{uuid.uuid4().hex[:6]}")
        transport.subscribe(Topics().event("master"), on_event)
        transport.start()
        assert transport.wait_connected(10)
        rig.start_node("master")
        rig.wait_up("master")  # the focuser's temperature exists once the node has connected it
        inject(0)  # before the first autofocus, which follows the first 1 s frame
        assert rig.wait_node("master", 200) == 0, rig.logs()
    finally:
        if transport is not None:
            transport.stop()
        rig.stop()
    assert not errors, errors
    report = json.loads(next((rig.images / "master" / "nights").glob("report-*/report.json")).read_text())
    runs = [r for r in report["autofocus"] if r["node"] == "master"]
    learned = report["focus_temperature"]["master"]["Luminance"]
    print(f"\ninjected {SLOPE} steps/degC; learned {learned['slope_steps_per_c']} from "
          f"{[(r['temperature'], r['position'], r['status']) for r in runs]} (truth {applied})")
    assert learned["n"] >= 3, runs
    assert abs(learned["slope_steps_per_c"] - SLOPE) <= 0.2 * abs(SLOPE), learned
    assert learned["suggested_temp_coefficient"] == pytest.approx(learned["slope_steps_per_c"], abs=0.1)
