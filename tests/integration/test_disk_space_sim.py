"""Issue 20, disk space, on the real stack (INDI simulators, mosquitto, `indisync run` processes):
a slave whose storage.min_free_gb is above the free space its disk has refuses every frame before
the shutter opens, with the reason and the fix in its reply and its exposure_done event, writes no
file (partial or otherwise), raises one alarm (an MQTT "alarm" event, and apprise to a local
json:// endpoint), and every node's state carries disk_free_gb, shown by `indisync status`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.sim.rig import SimRig
from tests.conftest import MqttCollector
from tests.fakes.json_endpoint import JsonEndpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FRAMES = 3


@pytest.mark.timeout(240)
def test_a_slave_short_of_disk_refuses_every_frame_writes_nothing_and_alarms(tmp_path):
    with JsonEndpoint() as endpoint:
        rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path / "rig",
                     master_section={"target": "M42", "batches": 1, "refocus": {"after_batch": False},
                                     "sequence": {"slots": [{"type": "light", "filter": "Luminance",
                                                             "exposure": 300, "repeat": FRAMES}]}},
                     slave_section={"filters": ["Red", "Green"], "exposure": 300},
                     node_sections={"alerts": {"urls": [endpoint.url], "send_timeout_s": 10}})
        rig.start()
        wire = None
        try:
            # min_free_gb above what the disk has (read now; other tests may write meanwhile: twice, plus 1 GB)
            free_gb = shutil.disk_usage(tmp_path).free / 1e9
            limit = round(2 * free_gb + 1, 1)
            slave_cfg = rig.nodes["slave1"].config_path
            data = yaml.safe_load(slave_cfg.read_text())
            data["storage"]["min_free_gb"] = limit
            slave_cfg.write_text(yaml.safe_dump(data, sort_keys=False))
            mqtt = MqttConfig(host=rig.broker.host, port=rig.broker.port)
            tree = Topics(mqtt.topic_prefix, mqtt.discovery_prefix)
            wire = MqttCollector(mqtt, f"{mqtt.topic_prefix}/#")
            rig.start_slaves()
            rig.start_node("master")
            assert rig.wait_node("master", 150) == 0, rig.logs()

            slave_dir = rig.images / "slave1"
            reason = re.compile(rf"only \d+\.\d\d GB free in {re.escape(str(slave_dir.resolve()))}, below "
                                rf"storage\.min_free_gb {limit:g}: free space or lower it")
            # the master's frames are all there; the slave refused each of its exposures with the reason
            assert len(list((rig.images / "master").glob("*.fits"))) == FRAMES
            done = [env.payload for _, env in wire.envelopes("exposure_done", "slave1")]
            assert len(done) == FRAMES, done
            assert all(d["status"] == "failed" and reason.fullmatch(d["reason"]) for d in done), done
            replies = [messages.decode(m.payload, "reply").payload for m in wire.messages(tree.reply("slave1"))]
            expose = [r for r in replies if r["command"] == "expose" and r["status"] not in ("accepted", "running")]
            assert len(expose) == FRAMES and all(r["status"] == "failed" and reason.fullmatch(r["reason"])
                                                 for r in expose), expose
            assert not [e for _, e in wire.envelopes("exposure_started", "slave1")]  # the shutter never opened
            # no file of any kind (a frame, a temp file) outside the node's own .indisync state folder
            left = [p for p in slave_dir.rglob("*")
                    if p.is_file() and ".indisync" not in p.relative_to(slave_dir).parts]
            assert left == []
            # one alarm (the repeats within alerts.repeat_s are counted, not sent): on MQTT and through apprise
            alarms = [env.payload for _, env in wire.envelopes("alarm", "slave1")]
            assert [a["cause"] for a in alarms] == ["disk_low:slave1"] and alarms[0]["level"] == "critical"
            assert reason.search(alarms[0]["body"])
            got = endpoint.wait_for(lambda bodies: any("disk full" in b["title"] for b in bodies), 20)
            sent = [b for b in got if "disk full" in b["title"]]
            assert len(sent) == 1 and sent[0]["title"] == "[slave1] slave1: disk full, frames refused"
            assert reason.search(sent[0]["message"]) and sent[0]["type"] == "failure"
            # the master's end-of-night summary (info: below min_level warning, so on MQTT only)
            summary = [env.payload for _, env in wire.envelopes("alarm", "master")]
            assert [a["cause"][:14] for a in summary] == ["night_summary:"] and summary[0]["level"] == "info"
            assert not [b for b in endpoint.received if b["title"].startswith("[master]")]
            # every node's free space, in its state and in `indisync status`
            result = subprocess.run([sys.executable, "-m", "indisync.cli", "status", "--broker",
                                     f"{mqtt.host}:{mqtt.port}", "--once", "--json"],
                                    capture_output=True, text=True, timeout=30, cwd=REPO)
            assert result.returncode == 0, result.stderr
            rows = {row["name"]: row for row in json.loads(result.stdout)["nodes"]}
            for node in ("master", "slave1"):
                assert 0 < rows[node]["disk_free_gb"] < limit, rows[node]
        except BaseException:
            print(rig.logs())
            raise
        finally:
            if wire is not None:
                wire.close()
            rig.stop()
