"""A slave in the season (issue 16, no server): the master's ExposeArgs.plan is the list of this
node's lines that still need frames; the slave rotates through those only (in plan order, after the
last one taken, kept on disk), with each line's exposure and binning; an empty plan takes nothing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from indisync.config import load_config
from indisync.errors import IndisyncError
from indisync.node.slave import SlaveNode
from indisync.protocol.commands import Command


class StandInDevices:
    camera = filter_wheel = focuser = None


def make_slave(tmp_path):
    cfg = load_config(data={
        "node": {"name": "slave1", "role": "slave"},
        "storage": {"directory": str(tmp_path / "images")},
        "slave": {"filters": ["Red"], "exposure": 2, "frame_overhead": 1},
    })
    node = SlaveNode(cfg)
    node.link.update_state = lambda **fields: None
    node.link.event = lambda *a, **k: None
    node.supervisor.get = lambda: StandInDevices()
    node.taken = []

    def one_frame(devices, args, filter_name, duration, n, binning=None, plan=None):
        node.taken.append((filter_name, duration, binning, tuple(plan) if plan is not None else None))
        node.plan_rotation.advance(filter_name, plan)  # as the real one does once the frame is on disk
        return SimpleNamespace(path=Path(f"/x/slave1_T_{filter_name}_{len(node.taken)}.fits"), filter_name=filter_name,
                               start="2027-03-01T00:00:00.000", duration=duration)

    node._one_frame = one_frame
    return node


@pytest.fixture
def slave(tmp_path):
    return make_slave(tmp_path)


def expose(node, duration, plan, sync="strict"):
    args = {"duration": duration, "sync": sync, "exposure_id": "7", "batch": 1, "target": "M51"}
    if plan is not None:
        args["plan"] = plan
    return node.cmd_expose(Command(id=f"c{len(node.taken)}", name="expose", sender="master", args=args, ts=""),
                           lambda **kw: None)


def test_strict_the_slave_rotates_through_the_needed_lines_only(slave):
    plan = [["Red", 2, 1], ["Green", 3, 2]]
    results = [expose(slave, 3, plan) for _ in range(3)]
    assert [t[:3] for t in slave.taken] == [("Red", 2.0, 1), ("Green", 3.0, 2), ("Red", 2.0, 1)]
    assert results[1].files == ("slave1_T_Green_2.fits",) and results[1].filters == ("Green",)
    assert results[1].durations == (3.0,)
    # Red's goal met: it drops out, Green keeps its turn
    expose(slave, 3, [["Green", 3, 2]])
    assert slave.taken[-1][0] == "Green"


def test_strict_a_line_longer_than_the_masters_exposure_waits_for_a_longer_one(slave):
    plan = [["Red", 2, 1], ["Blue", 5, 1]]
    for _ in range(2):
        expose(slave, 3, plan)
    assert [t[0] for t in slave.taken] == ["Red", "Red"]
    expose(slave, 5, plan)
    assert slave.taken[-1][0] == "Blue"
    with pytest.raises(IndisyncError) as failure:
        expose(slave, 1, plan)
    assert "Red 2 s" in str(failure.value) and "1 s" in str(failure.value) and "indisync targets" in str(failure.value)
    assert not slave.device_lock.locked()


def test_an_empty_plan_takes_nothing_and_answers_at_once(slave):
    result = expose(slave, 3, [])
    assert result.files == () and slave.taken == []


def test_loose_takes_as_many_plan_frames_as_fit(slave):
    result = expose(slave, 10, [["Red", 2, 1], ["Green", 2, 1]], sync="loose")
    assert [t[0] for t in slave.taken] == ["Red", "Green", "Red"] and len(result.files) == 3


def test_the_plan_rotation_survives_a_restart(tmp_path):
    first = make_slave(tmp_path)
    expose(first, 3, [["Red", 2, 1], ["Green", 2, 1], ["Blue", 2, 1]])
    expose(first, 3, [["Red", 2, 1], ["Green", 2, 1], ["Blue", 2, 1]])
    again = make_slave(tmp_path)  # the same state file
    expose(again, 3, [["Red", 2, 1], ["Green", 2, 1], ["Blue", 2, 1]])
    assert again.taken[0][0] == "Blue"


def test_without_a_plan_the_checked_rotation_is_used_as_before(slave):
    slave.rotation = None  # no wheel: unfiltered, slave.exposure
    slave._one_frame = lambda devices, args, f, duration, n, **kw: slave.taken.append((f, duration, kw)) or \
        SimpleNamespace(path=Path("/x/a.fits"), filter_name=f, start="s", duration=duration)
    expose(slave, 3, None)
    assert slave.taken == [(None, 2.0, {})]
