"""The `cool` and `warm` handlers of a node, on a stand-in camera (no servers; the MQTT link is never
started, so its state updates stay local)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from indisync.config import load_config
from indisync.contracts import CoolResult, WarmResult
from indisync.errors import IndisyncError
from indisync.node.base import NodeBase
from tests.unit.test_cooling import FakeCamera


class CoolerlessCamera:
    has_cooler = False
    temperature = None
    setpoint = None


def node_with(camera, cooling):
    cfg = load_config(data={"node": {"name": "ota9"}, "camera": {"cooling": cooling}})
    node = NodeBase(cfg)
    node.supervisor.get = lambda: SimpleNamespace(camera=camera)
    return node


def command(**args):
    return SimpleNamespace(args=args)  # a wire object: missing fields take their defaults


def test_cool_is_skipped_without_a_cooler_or_without_cooling_config():
    node = node_with(CoolerlessCamera(), {"setpoint": -10})
    assert node.cmd_cool(command(), lambda *a, **k: None).skipped is True
    camera = FakeCamera(20.0)
    camera.has_cooler = True
    node = node_with(camera, None)
    result = node.cmd_cool(command(), lambda *a, **k: None)
    assert result == CoolResult(reached=True, skipped=True, reason="camera.cooling is null", temperature=20.0)
    assert camera.sent == []
    assert node.cmd_warm(command(), lambda *a, **k: None).skipped is True


def test_cool_waits_for_the_setpoint_with_progress_and_warm_answers_at_once():
    camera = FakeCamera(0.0)
    camera.has_cooler = True
    node = node_with(camera, {"setpoint": -5, "tolerance": 0.5, "timeout": 10, "warm_to": 8})
    stop = threading.Event()

    def ramp():  # the node's watch thread, faster
        while not stop.is_set():
            camera.step()
            node.cooling.sample()
            time.sleep(0.05)

    feeder = threading.Thread(target=ramp, daemon=True)
    feeder.start()
    progress = []
    try:
        result = node.cmd_cool(command(), lambda fraction=None, **r: progress.append((fraction, r)))
    finally:
        stop.set()
        feeder.join(2)
    assert result == CoolResult(reached=True, setpoint=-5.0, temperature=-5.0)
    assert camera.sent == [-5.0]
    assert progress and all(r["setpoint"] == -5.0 for _, r in progress)
    assert all(0.0 <= f <= 1.0 for f, _ in progress if f is not None)
    assert node.link.state["cooling"]["setpoint"] == -5.0

    started = time.monotonic()
    assert node.cmd_warm(command(), lambda *a, **k: None) == WarmResult(setpoint=8.0, temperature=-5.0)
    assert time.monotonic() - started < 1.0 and camera.sent == [-5.0, 8.0]
    assert node.link.state["cooling"] == {"setpoint": 8.0, "temperature": -5.0, "reached": False, "eta_s": None}


def test_cool_timeout_fails_naming_the_temperature():
    camera = FakeCamera(3.0)
    camera.has_cooler = True
    node = node_with(camera, {"setpoint": -40, "timeout": 0.5})
    with pytest.raises(IndisyncError, match=r"not reached within 0.5 s: the sensor is at 3.0 C"):
        node.cmd_cool(command(), lambda *a, **k: None)
