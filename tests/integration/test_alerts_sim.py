"""Issue 20, alarms on the real stack (INDI simulators, mosquitto, `indisync run` processes, apprise
to a local json:// endpoint): a slave killed (kill -9) while the night images raises "node offline"
on the master after alerts.node_offline_s, and the night's end sends its summary (frames per node
and filter, shutter-open %, autofocus runs, failures, the report's path). Each alarm is both an MQTT
"alarm" event on the master's event topic and an apprise notification."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indisync.config import MqttConfig
from indisync.sim.rig import SimRig
from tests.conftest import MqttCollector
from tests.fakes.json_endpoint import JsonEndpoint

pytestmark = pytest.mark.integration

FRAMES = 12


def wait_for_frames(rig: SimRig, node: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list((rig.images / node).glob("*.fits"))) < count:
        assert time.monotonic() < deadline, f"{node} did not write {count} frames within {timeout} s"
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_a_slave_killed_mid_night_alarms_and_the_night_ends_with_its_summary(tmp_path):
    with JsonEndpoint() as endpoint:
        rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path / "rig", record_section={"report": True},
                     master_section={"target": "M42", "batches": 1, "refocus": {"after_batch": False},
                                     "sequence": {"slots": [{"type": "light", "filter": "Luminance",
                                                             "exposure": 300, "repeat": FRAMES}]}},
                     slave_section={"filters": ["Red", "Green"], "exposure": 300},
                     node_sections={"alerts": {"urls": [endpoint.url], "min_level": "info", "node_offline_s": 1,
                                               "send_timeout_s": 10}})
        rig.start()
        wire = None
        try:
            mqtt = MqttConfig(host=rig.broker.host, port=rig.broker.port)
            wire = MqttCollector(mqtt, f"{mqtt.topic_prefix}/#")
            rig.start_slaves()
            rig.start_node("master")
            wait_for_frames(rig, "slave1", 2, 90)
            rig.kill_node("slave1")
            killed = time.monotonic()
            # dead_after (5 s) + node_offline_s (1 s) + the watch's period (5 s), with a margin
            got = endpoint.wait_for(lambda bodies: any("offline" in b["title"] for b in bodies), 25)
            took = time.monotonic() - killed
            offline = [b for b in got if "offline" in b["title"]]
            assert len(offline) == 1 and offline[0]["title"] == "[master] Node slave1 offline", offline
            assert "while the night is imaging" in offline[0]["message"] and offline[0]["type"] == "warning"
            assert rig.nodes["master"].process.poll() is None, "the night was over before the alarm: lengthen it"
            events = [env.payload for _, env in wire.envelopes("alarm", "master")]
            assert [e["cause"] for e in events] == ["node_offline:slave1"]

            assert rig.wait_node("master", 150) == 0
            got = endpoint.wait_for(lambda bodies: any(b["title"].startswith("[master] Night ") for b in bodies), 20)
            summary, = [b for b in got if b["title"].startswith("[master] Night ")]
            body = summary["message"]
            assert summary["type"] == "info" and summary["title"].endswith(" frames")
            assert f"master: {FRAMES} frames (Luminance {FRAMES}), shutter open " in body
            assert "slave1: " in body and "Red " in body and "autofocus 0/0 ok" in body
            report = body.split("Report: ")[1].strip()
            assert report.endswith("index.html") and Path(report).is_file()
            events = [env.payload for _, env in wire.envelopes("alarm", "master")]
            assert [e["cause"].split(":")[0] for e in events] == ["node_offline", "night_summary"]
            print(f"node offline alarm {took:.1f} s after kill -9 (dead_after 5 s, node_offline_s 1 s)")
        except BaseException:
            print(rig.logs())
            raise
        finally:
            if wire is not None:
                wire.close()
            rig.stop()
