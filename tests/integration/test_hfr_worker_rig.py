"""Issue 18 on the real stack: a slave (`indisync run`, INDI simulators, mosquitto) measures its
frames' HFR in a niced child process, and survives that process being killed.

- the worker is a child of the slave process, running ``indisync.node.hfr_worker`` at the slave's
  niceness + ``slave.measure_nice`` (10), up before the first frame; each frame's HFR arrives after
  the reply in ``frame_measured``;
- kill -9 the worker: the next frame is still measured (a new worker), by the same slave process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from indisync.config import MqttConfig
from indisync.sim.rig import SimRig
from tests.conftest import MqttCollector, master_command_client, stopped_at_the_end

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

NODE = "slave1"


@pytest.fixture(scope="module")
def rig(request, tmp_path_factory):
    rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path_factory.mktemp("hfrrig"),
                 slave_section={"filters": ["Red", "Green"], "exposure": 30.0})
    rig.start()
    with stopped_at_the_end(request, rig):
        rig.start_node(NODE)
        rig.wait_up(NODE, timeout=60)
        yield rig


@pytest.fixture(scope="module")
def direct(rig):
    return MqttConfig(host=rig.broker.host, port=rig.broker.port)


@pytest.fixture(scope="module")
def wire(direct):
    collector = MqttCollector(direct, f"{direct.topic_prefix}/{NODE}/event")
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def master(direct):
    with master_command_client(direct) as client:
        yield client


def hfr_workers(parent: int) -> list[int]:
    """Pids of the live children of ``parent`` that run indisync.node.hfr_worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state not in ("Z", "X") and b"indisync.node.hfr_worker" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def measured(wire, file: str, timeout: float = 60.0) -> dict:
    def find():
        hits = [env.payload for _, env in wire.envelopes("frame_measured", NODE) if env.payload.get("file") == file]
        return hits[0] if hits else None

    payload = wait_for(find, timeout)
    assert payload is not None, f"no frame_measured for {file}"
    return payload


def test_the_slave_measures_in_a_niced_child_process(rig, wire, master):
    slave = rig.nodes[NODE].process.pid
    workers = wait_for(lambda: hfr_workers(slave), 30)  # up before the first frame
    assert len(workers) == 1, workers
    assert os.getpriority(os.PRIO_PROCESS, workers[0]) == min(19, os.getpriority(os.PRIO_PROCESS, slave) + 10)
    result = master.call(NODE, "expose", {"duration": 60, "target": "M42"}, timeout=60)
    payload = measured(wire, result["files"][0])
    assert payload["when"] == "after_reply" and payload.get("error") is None
    assert payload["stars"] > 0 and payload["hfr"] > 0
    assert hfr_workers(slave) == workers  # the same worker, frame after frame


def test_a_killed_worker_is_replaced_and_the_next_frame_is_measured(rig, wire, master):
    process = rig.nodes[NODE].process
    (worker,) = wait_for(lambda: hfr_workers(process.pid), 30)
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: worker not in hfr_workers(process.pid), 10)
    result = master.call(NODE, "expose", {"duration": 60, "target": "M42"}, timeout=60)
    payload = measured(wire, result["files"][0])
    assert payload.get("error") is None and payload["stars"] > 0 and payload["hfr"] > 0
    replacement = hfr_workers(process.pid)
    assert len(replacement) == 1 and replacement != [worker]
    assert process.poll() is None and rig.nodes[NODE].starts == 1  # the slave itself never went down
