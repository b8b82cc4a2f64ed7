"""A loose-sync slave whose next filter does not fit in the master's exposure (no server): it must
fail the command with a reason naming the filter, both exposures and the fix, tell MQTT, and leave
its rotation on that filter, instead of answering "done" with nothing taken."""

from __future__ import annotations

import pytest

from indisync.config import load_config
from indisync.errors import IndisyncError
from indisync.node.slave import SlaveNode
from indisync.protocol.commands import Command
from indisync.sequence.rotation import FilterRotation


class StandInDevices:
    camera = filter_wheel = focuser = None


@pytest.fixture
def slave(tmp_path):
    cfg = load_config(data={
        "node": {"name": "slave1", "role": "slave"},
        "storage": {"directory": str(tmp_path / "images")},
        "slave": {"filters": ["Red", "Green"], "exposure": {"Red": 120, "Green": 30}, "frame_overhead": 5},
    })
    node = SlaveNode(cfg)
    node.rotation = FilterRotation(["Red", "Green"], node.store)
    node.errors = []
    node.link.update_state = lambda **fields: None
    node.link.event = lambda *a, **k: None
    node.link.error = lambda message, **k: node.errors.append(message)
    node.supervisor.get = lambda: StandInDevices()
    return node


def expose(node, duration):
    command = Command(id="c1", name="expose", sender="master",
                      args={"duration": duration, "sync": "loose", "exposure_id": "7", "batch": 1}, ts="")
    return node.cmd_expose(command, lambda **kw: None)


def test_loose_slave_whose_next_filter_does_not_fit_fails_loudly(slave):
    with pytest.raises(IndisyncError) as failure:
        expose(slave, 60)
    message = str(failure.value)
    for needed in ("Red", "120 s", "5 s overhead", "60 s", "slave.exposure", "lengthen the master"):
        assert needed in message, message
    assert slave.errors and "Red" in slave.errors[0], "nothing was said on MQTT"
    assert slave.rotation.peek() == "Red", "the rotation moved past a filter it never took"
    assert not slave.device_lock.locked()
