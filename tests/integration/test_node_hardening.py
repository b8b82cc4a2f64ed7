"""Node hardening against the real stack: a master whose indiserver is killed and brought back
guides again on the new devices (the guider used to keep the dead ones for the rest of the night)."""

from __future__ import annotations

import json
import time

import pytest

from indisync.config import MqttConfig
from indisync.sim.report import read_frames
from indisync.sim.rig import SimRig

from ..conftest import MqttCollector

pytestmark = pytest.mark.integration


def wait_for_frames(rig: SimRig, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list((rig.images / "master").glob("*.fits"))) < count:
        assert time.monotonic() < deadline, f"the master did not write frame {count} within {timeout}s"
        time.sleep(0.2)


def master_section(frames: int) -> dict:
    return {"target": "M42", "batches": 1, "refocus": {"after_batch": False},
            "dither": {"every_frames": 0},
            "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 300, "repeat": frames}]}}


@pytest.mark.timeout(280)
def test_guiding_resumes_after_the_masters_indiserver_is_killed_and_restarted(tmp_path):
    frames = 20  # more than the test waits for: it stops the master once guiding is back
    rig = SimRig(slaves=0, time_factor=0.01, workdir=tmp_path / "rig", master_section=master_section(frames),
                 guider_section={"exposure": 1.0}).start()
    collector = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/master/state")

    def states():
        return [json.loads(m.payload)["payload"] for m in collector.messages("indisync/master/state")]

    def guiding_with_frames(since: int) -> bool:
        # guiding, with an RMS from guide frames: the guide loop runs on live devices
        return any((s.get("guiding") or {}).get("state") == "guiding" and s["guiding"].get("rms_px") is not None
                   for s in states()[since:])

    try:
        rig.start_node("master")
        assert collector.wait_for(lambda: guiding_with_frames(0), 120), "guiding never started"
        wait_for_frames(rig, 1, 60)  # guiding has settled and the night is under way
        rig.kill_indi("master")  # indiserver and its drivers gone at once, mid-night
        assert collector.wait_for(lambda: any(s.get("phase") == "error" for s in states()), 30), \
            "the master did not report the lost indiserver"
        lost_at = max(i for i, s in enumerate(states()) if s.get("phase") == "error")

        def guider_down() -> int | None:
            # the old guide loop reported its end: from here on a "guiding" state is a new loop's
            found = [i for i, s in enumerate(states()) if i >= lost_at
                     and (s.get("guiding") or {}).get("state") in ("error", "idle", "lost")]
            return found[0] if found else None

        assert collector.wait_for(lambda: guider_down() is not None, 30), "the dead guider did not say so"
        down_at = guider_down()
        time.sleep(2)
        rig.start_indi("master")  # back on the same port, mount where it was
        assert collector.wait_for(lambda: guiding_with_frames(down_at + 1), 120), (
            "guiding did not come back after the indiserver restart:\n" + rig.nodes["master"].log_text()[-3000:])
        back = len(read_frames(rig.images))
        wait_for_frames(rig, back + 1, 60)  # and the night goes on, guided
        assert rig.stop_node("master") == 0, "the master did not end cleanly"
        assert "guider rebuilt on the new devices" in rig.nodes["master"].log_text()
    except BaseException:
        print(rig.logs())
        raise
    finally:
        collector.close()
        rig.stop()
