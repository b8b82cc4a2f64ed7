"""grading.retake on a real master: a frame rejected because the sky turned noisy (SIM_NOISE raised
and read back) is kept on disk and its slot is taken once more; the retake, under a clear sky
again, is accepted; the night ends with one frame more than planned."""

from __future__ import annotations

import uuid

import pytest
from astropy.io import fits

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.indi import get_numbers, set_number
from indisync.sim.rig import SimRig

pytestmark = pytest.mark.integration


@pytest.mark.timeout(150)
def test_rejected_master_frame_is_kept_and_retaken_once(tmp_path):
    rig = SimRig(slaves=0, time_factor=1.0, workdir=tmp_path / "rig",
                 master_section={"target": "M42", "batches": 1, "refocus": {"after_batch": False},
                                 # 2 s between frames: the noise set on a frame's exposure_done is in place
                                 # before the next one starts, however late the event comes on a busy machine
                                 "sequence": {"delay_between": 2.0,
                                              "slots": [{"type": "light", "filter": "Luminance", "exposure": 1.0,
                                                         "repeat": 4}]}})
    transport = None
    done: list[dict] = []
    errors: list[BaseException] = []
    rig.start()
    try:
        indi = rig.nodes["master"].indi
        # SimRig writes the node configs at start(); this test adds the grading section to the master's.
        path = rig.nodes["master"].config_path
        path.write_text(path.read_text() + "grading: {min_history: 2, retake: true}\n")

        def noise(value):
            set_number(indi.host, indi.port, "CCD Simulator", "SIMULATOR_SETTINGS", {"SIM_NOISE": value})
            now = get_numbers(indi.host, indi.port, "CCD Simulator", "SIMULATOR_SETTINGS")["SIM_NOISE"]
            assert now == value, f"SIM_NOISE asked {value}, simulator has {now}"

        def on_event(msg) -> None:
            try:
                env = messages.decode(msg.payload)
                if env.type == "exposure_done" and env.payload["status"] == "ok":
                    done.append(env.payload)
                    if len(done) == 2:
                        noise(60)  # clouds for the third frame
                    elif len(done) == 3:
                        noise(10)  # clear again for its retake
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        transport = MqttTransport(MqttConfig(host=rig.broker.host, port=rig.broker.port),
                                  client_id=f"retake-test-{uuid.uuid4().hex[:6]}")
        transport.subscribe(Topics().event("master"), on_event)
        transport.start()
        assert transport.wait_connected(10)
        rig.start_node("master")
        rig.wait_up("master")
        noise(10)
        assert rig.wait_node("master", 120) == 0, rig.logs()
    finally:
        if transport is not None:
            transport.stop()
        rig.stop()
    assert not errors, errors
    grades = [d["grade"] for d in done]
    assert grades == ["accepted", "accepted", "rejected", "accepted", "accepted"], done
    assert done[2]["grade_reason"].startswith("stars "), done[2]
    files = sorted((rig.images / "master").glob("*.fits"))
    assert len(files) == 5  # 4 planned + 1 retake; the rejected frame is kept
    assert sorted(fits.getheader(f)["GRADE"] for f in files) == ["accepted"] * 4 + ["rejected"]
