"""`indisync status --once --json` against a real mosquitto with live and departed nodes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from indisync.protocol.messages import now_iso
from indisync.protocol.node_link import NodeLink

pytestmark = pytest.mark.integration


def status(broker, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indisync.cli", "status", "--broker", broker.address, "--once", *extra],
        capture_output=True, text=True, timeout=30,
    )


def test_status_once_json_shows_every_node(mosquitto, mqtt_config):
    ota2 = NodeLink(mqtt_config, "ota2", "slave")
    ota3 = NodeLink(mqtt_config, "ota3", "slave")
    ota1 = NodeLink(mqtt_config, "ota1", "master")
    try:
        for link in (ota1, ota2, ota3):
            assert link.start(wait=10)
        ota2.update_state(
            phase="exposing", filter="Ha", focuser_position=41250, hfr=2.31, stars=57, frames=12,
            exposure={"id": "b1-s4", "filter": "Ha", "start": now_iso(), "duration": 300},
        )
        ota3.close()  # a clean goodbye: retained 'offline'

        out = status(mosquitto, "--json")
        assert out.returncode == 0, out.stderr
        nodes = {n["name"]: n for n in json.loads(out.stdout)["nodes"]}
        assert sorted(nodes) == ["ota1", "ota2", "ota3"]
        n2 = nodes["ota2"]
        assert n2["online"] is True and n2["role"] == "slave" and n2["phase"] == "exposing"
        assert n2["filter"] == "Ha" and n2["focuser_position"] == 41250 and n2["hfr"] == 2.31 and n2["frames"] == 12
        assert n2["exposure"]["duration"] == 300 and 0 <= n2["exposure"]["progress"] < 0.1
        assert 0 <= n2["seconds_since_heartbeat"] < 3
        assert nodes["ota1"]["role"] == "master" and nodes["ota1"]["online"] is True
        assert nodes["ota3"]["online"] is False and nodes["ota3"]["status"] == "offline"

        table = status(mosquitto)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split()[:4] == ["NODE", "ROLE", "ONLINE", "PHASE"]
        row = next(line for line in lines if line.startswith("ota2"))
        assert "exposing" in row and "Ha" in row and "41250" in row and "of 300s" in row
    finally:
        ota1.close()
        ota2.close()


def test_status_names_an_unreachable_broker():
    out = subprocess.run(
        [sys.executable, "-m", "indisync.cli", "status", "--broker", "127.0.0.1:1", "--once", "--json"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 2 and "no MQTT broker answered at 127.0.0.1:1" in out.stderr
