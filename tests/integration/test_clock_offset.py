"""Issue 13.4 on real processes: a slave whose clock runs a known 0.25 s ahead (``testing.clock_skew_s``,
a tests-only knob) measures that offset to the master over MQTT, publishes it in its state, writes it
in every frame's CLKOFFS, warns once with the chrony fix, and the skew report corrects for it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.sim.report import by_node, read_frames, start_skews
from indisync.sim.rig import SimRig
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

INJECTED_S = 0.25


@pytest.mark.timeout(240)
def test_a_slave_finds_its_injected_clock_offset_within_10ms(tmp_path):
    master_section = {"target": "M42", "batches": 1, "refocus": {"after_batch": False},
                      "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 60, "repeat": 4}]}}
    rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path / "rig", master_section=master_section,
                 slave_section={"filters": ["Red", "Green", "Blue"], "exposure": 60})
    rig.start()
    wire = None
    ok = False
    try:
        slave_cfg = rig.nodes["slave1"].config_path
        data = yaml.safe_load(slave_cfg.read_text())
        data["testing"] = {"clock_skew_s": INJECTED_S}
        slave_cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        cfg = MqttConfig(host=rig.broker.host, port=rig.broker.port)
        t = Topics(cfg.topic_prefix)
        wire = MqttCollector(cfg, t.state("slave1"), t.event("slave1"))
        rig.start_slaves()
        rig.start_node("master")

        def offsets():
            return [messages.decode(m.payload, "state").payload.get("clock_offset_s")
                    for m in wire.messages(t.state("slave1")) if m.payload]

        assert wire.wait_for(lambda: len([o for o in offsets() if o is not None]) >= 3, 30), offsets()
        assert rig.wait_node("master", 150) == 0, "the master's sequence did not finish"
        measured = [o for o in offsets() if o is not None][-1]
        print(f"injected {INJECTED_S:+.3f} s, measured {measured:+.4f} s")
        assert abs(measured - INJECTED_S) < 0.010

        events = [messages.decode(m.payload, "event") for m in wire.messages(t.event("slave1"))]
        warnings = [e.payload["message"] for e in events if e.type == "error"]
        warnings = [w for w in warnings if "chrony" in w and "off the master" in w]
        assert len(warnings) == 1, warnings  # once per crossing, not once per sample

        frames = by_node(read_frames(rig.images))
        assert len(frames["master"]) == 4 and len(frames["slave1"]) == 4
        assert all(f.clock_offset == 0.0 for f in frames["master"])
        assert all(abs(f.clock_offset - INJECTED_S) < 0.010 for f in frames["slave1"]), \
            [f.clock_offset for f in frames["slave1"]]
        raw = start_skews(read_frames(rig.images), correct_clocks=False)["slave1"]
        corrected = start_skews(read_frames(rig.images))["slave1"]
        print(f"start skew raw {[round(s * 1000) for s in raw]} ms, corrected {[round(s * 1000) for s in corrected]} ms")
        assert all(abs(r - c - INJECTED_S) < 0.010 for r, c in zip(raw, corrected))
        assert max(abs(c) for c in corrected) < 0.1

        status = subprocess.run([sys.executable, "-m", "indisync.cli", "status", "--broker",
                                 f"{cfg.host}:{cfg.port}", "--once", "--json"],
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        row = {r["name"]: r for r in json.loads(status.stdout)["nodes"]}["slave1"]
        assert abs(row["clock_offset_s"] - INJECTED_S) < 0.010 and row["clock_rtt_s"] < 0.1
        ok = True
    finally:
        if not ok:
            print(rig.logs())
        if wire is not None:
            wire.close()
        rig.stop()
