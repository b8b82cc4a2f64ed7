"""`indisync record` on a real mosquitto: what a node says lands in tonight's log, and on SIGTERM
with --report the night report is written from it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from indisync.config import MqttConfig
from indisync.protocol.node_link import NodeLink
from indisync.sim.rig import night_boundary_far_from_now

pytestmark = pytest.mark.integration


@pytest.mark.timeout(90)
def test_record_command_logs_a_node_and_writes_the_report(mosquitto, tmp_path):
    nights = tmp_path / "nights"
    # the night's boundary 12 h from now, not at noon: a run across it would split the log (issue 18)
    config = tmp_path / "record.yaml"
    config.write_text(f"record: {{night_starts_hour: {night_boundary_far_from_now()}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "indisync.cli", "record", "--config", str(config), "--broker",
                             f"{mosquitto.host}:{mosquitto.port}", "--dir", str(nights), "--report"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    link = None
    try:
        # its log (stderr, merged here) may come first: read until it says it records, bounded
        seen = [proc.stdout.readline() for _ in range(1)]
        while "recording" not in seen[-1] and len(seen) < 20 and seen[-1]:
            seen.append(proc.stdout.readline())
        assert "recording" in seen[-1], seen
        link = NodeLink(MqttConfig(host=mosquitto.host, port=mosquitto.port, heartbeat=0.5, dead_after=2.0),
                        "ota2", "slave")
        assert link.start(wait=10)
        start = "2026-12-03T20:00:00.000Z"
        link.update_state(phase="exposing", exposure={"id": "7", "filter": "Red", "start": start, "duration": 30.0})
        link.event("exposure_started", exposure_id="7", filter="Red", duration=30.0, start=start)
        link.event("exposure_done", exposure_id="7", status="ok", filter="Red", file="ota2_Red_0001.fits",
                   start=start, duration=30.0, hfr=2.1, stars=120, grade="accepted", grade_reason="ok")
        link.update_state(phase="idle", exposure=None, frames=1)

        def logged():
            logs = list(nights.glob("*.jsonl"))
            return logs and sum(1 for line in logs[0].read_text().splitlines() if '"exposure_done"' in line)

        deadline = time.monotonic() + 10
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert logged(), "the exposure never reached the night log"
    finally:
        if link is not None:
            link.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    report = json.loads(next(nights.glob("report-*/report.json")).read_text())
    assert report["nodes"]["ota2"]["frames"] == 1 and report["nodes"]["ota2"]["frames_by_filter"] == {"Red": 1}
    assert "night report:" in out
    kinds = [json.loads(line)["kind"] for line in next(nights.glob("*.jsonl")).read_text().splitlines()]
    assert {"status", "state", "event"} <= set(kinds)
