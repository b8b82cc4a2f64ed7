"""The chaos night's short form (benchmarks/chaos_night.py --quick) on the real stack: a master
guiding and two slaves; a slave killed with -9 mid-exposure and restarted, and the master's
indiserver killed and brought back. Judged from disk, logs and MQTT by the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos_night.py"


@pytest.mark.timeout(420)
def test_quick_chaos_night_loses_nothing_it_should_not_and_recovers(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path / "night")],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout)
    detail = json.dumps(report, indent=1)[:6000]
    assert report["duplicates"] == 0, detail
    assert report["partial_files"] == 0, detail
    assert report["rotation_errors"] == 0, detail
    assert [f["fault"] for f in report["faults"]] == ["slave_kill9", "master_indiserver"], detail
    for fault in report["faults"]:
        assert fault["detected_s"] is not None and fault["recovered_s"] is not None, fault
        assert fault["at_s"] <= fault["detected_s"] <= fault["recovered_s"], fault
    kill = next(f for f in report["faults"] if f["fault"] == "slave_kill9")
    assert kill["mid_exposure"], kill
    assert report["all_recovered"] and report["all_processes_clean"], detail
    frames = report["frames"]
    assert frames["master"]["lost"] == 0, detail  # the master loses nothing: it retries through the faults
    assert frames["slave2"]["lost"] == 0, detail  # an undisturbed slave loses nothing either
    assert 1 <= frames["slave1"]["lost"] <= 3, detail  # the killed one misses only the frames it was down for
    assert all(w["why"] for w in report["frames_lost_why"]["slave1"]), detail
    assert report["autofocus"]["master"] and all(r["status"] for r in report["autofocus"]["master"]), detail
