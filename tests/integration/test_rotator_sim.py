"""A rotator per OTA (issue 16, item 5) on the real INDI 1.9.9 simulators and astrometry.net:

- the Rotator class moves the Rotator Simulator and reads the angle back; a cancel and a timeout
  stop it (ROTATOR_ABORT_MOTION) where it is;
- the sim rig's coupling (indisync.sim.rotator_coupling.RotatorCoupling) makes the CCD Simulator follow the
  rotator: SIM_ROTATION read back, and the solved PA turned by the rotator's angle (west of the pier
  PA = 90 + SIM_ROTATION; measured, see test_acquire_sim for the 180 deg east of it);
- a slave node reaches a target PA within acquire.pa_tolerance_deg through the centre action's rotate
  step (the `rotate` command over MQTT), its rotator mounted "the other way round" (coupling sign
  -1), so the sign is learned from its first move; checked independently from the simulator's truth
  (SIM_ROTATION read back); a node without a rotator answers no_rotator.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from indisync.acquire.geometry import wrap180
from indisync.acquire.settings import AcquireSettings
from indisync.acquire.solver import hints_from_header, solve_hdu
from indisync.config import IndiConfig, MqttConfig
from indisync.devices.session import open_devices
from indisync.errors import ActionCancelled, DeviceError
from indisync.sim.astrometry_index import ensure_index
from indisync.sim.indi import IndiServer, get_numbers
from indisync.sim.rotator_coupling import RotatorCoupling
from tests.integration.test_acquire_sim import TARGET, point, set_site_for_hour_angle

pytestmark = pytest.mark.integration
ROTATOR = "Rotator Simulator"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return ensure_index(*TARGET, cache_dir=tmp_path_factory.mktemp("sim-index"))


def rotator_cfg(server) -> IndiConfig:
    return IndiConfig(host=server.host, port=server.port, camera="CCD Simulator", filter_wheel=None, focuser=None,
                      guide_camera=None, mount="Telescope Simulator", rotator=ROTATOR, move_timeout=60.0)


@pytest.mark.timeout(90)
def test_the_rotator_moves_reads_back_and_stops_on_cancel_or_timeout(tmp_path):
    with IndiServer(drivers=("indi_simulator_rotator",), workdir=tmp_path / "indi") as srv:
        cfg = IndiConfig(host=srv.host, port=srv.port, camera="CCD Simulator", filter_wheel=None, focuser=None,
                         guide_camera=None, mount=None, rotator=ROTATOR)
        with open_devices(cfg, need=("rotator",), want=("rotator",)) as dev:
            rotator = dev.rotator
            assert rotator.angle == 0.0 and rotator.limits == (0.0, 360.0)
            assert rotator.move_to(-15.0) == pytest.approx(345.0)  # across 0, the short way (about 2 s)
            assert get_numbers(srv.host, srv.port, ROTATOR, "ABS_ROTATOR_ANGLE")["ANGLE"] == pytest.approx(345.0)
            cancel = threading.Event()
            threading.Timer(1.2, cancel.set).start()
            t0 = time.monotonic()
            with pytest.raises(ActionCancelled, match="motion aborted"):
                rotator.move_to(165.0, cancel=cancel)  # 180 deg: ~18 s at the simulator's 10 deg/s
            assert time.monotonic() - t0 < 3.0
            stopped = rotator.angle
            time.sleep(2.5)  # a rotator that was not stopped moves 10 deg/s
            assert rotator.angle == stopped and stopped not in (345.0, 165.0), stopped
            with pytest.raises(DeviceError, match="did not finish within 1s"):
                rotator.move_to(stopped + 90.0, timeout=1.0)
            held = rotator.angle
            time.sleep(2.5)
            assert rotator.angle == held


@pytest.mark.timeout(180)
def test_the_coupling_turns_the_solved_field_with_the_rotator(tmp_path, index_dir):
    drivers = ("indi_simulator_ccd", "indi_simulator_telescope", "indi_simulator_rotator")
    settings = AcquireSettings(index_dirs=[str(index_dir)])
    with IndiServer(drivers=drivers, time_factor=0.1, workdir=tmp_path / "indi") as srv, \
            RotatorCoupling(srv.host, srv.port) as coupling:
        with open_devices(rotator_cfg(srv), need=("camera", "mount", "rotator")) as dev:
            set_site_for_hour_angle(dev, -1.0)  # west of the pier at any hour: PA = 90 + SIM_ROTATION
            dev.mount.unpark()
            dev.mount.slew_j2000(*TARGET, timeout=120)
            assert coupling.wait_mirrored(0.0, 10.0) == 0.0
            solved = {}
            for angle in (0.0, 25.0):
                dev.rotator.move_to(angle)
                assert coupling.wait_mirrored(angle, 10.0) == pytest.approx(angle)  # read back by the coupling
                assert get_numbers(srv.host, srv.port, "CCD Simulator", "SIMULATOR_SETTINGS")["SIM_ROTATION"] == \
                    pytest.approx(angle)
                hdu = dev.camera.expose(5.0)
                ra, dec = dev.mount.position_j2000()
                solved[angle] = solve_hdu(hdu, hints_from_header(hdu.header, settings, dev.mount.focal_length_mm,
                                                                 ra, dec), settings).rotation_deg
    assert coupling.errors == [] and coupling.sets >= 2 and not coupling.alive
    assert wrap180(solved[0.0] - 90.0) == pytest.approx(0.0, abs=0.3), solved
    assert wrap180(solved[25.0] - solved[0.0]) == pytest.approx(25.0, abs=0.3), solved


@pytest.mark.timeout(300)
def test_slaves_reach_the_target_pa_through_the_centre_actions_rotate_step(tmp_path, index_dir):
    """The master's side as the centre action runs it (rotate_rig over RemoteParticipant: the
    `rotate` command on the wire, a real registry) against two slave nodes: slave1 with a rotator
    mounted the other way round, slave2 with none."""
    from indisync.acquire.centering import CenterAttempt
    from indisync.night.actions.center import rotate_rig
    from indisync.night.token import Token
    from indisync.node.master_rig import RemoteParticipant
    from indisync.protocol.commands import CommandClient
    from indisync.protocol.registry import NodeRegistry
    from indisync.protocol.topics import Topics
    from indisync.protocol.transport import MqttTransport
    from indisync.sim.rig import SimRig
    from tests.unit.test_night_centering import FakeLink

    target_pa = 65.0  # the field starts at PA 90 (rotator 0, west of the pier): 25 deg to turn
    settings = AcquireSettings(index_dirs=[str(index_dir)], exposure=5.0, settle=0.5, pa_tolerance_deg=0.5,
                               rotate_attempts=3)
    rig = SimRig(slaves=2, time_factor=0.1, workdir=tmp_path / "rig", rotators=True, rotator_sign=-1,
                 acquire_section={"index_dirs": [str(index_dir)], "exposure": 5.0, "settle": 0.5,
                                  "pa_tolerance_deg": 0.5, "rotate_attempts": 3})
    rig.start()
    try:
        slave = rig.nodes["slave1"].indi
        point(slave, *TARGET)  # west of the pier at any hour
        # slave2 has no rotator: its config names none
        path = rig.nodes["slave2"].config_path
        path.write_text(path.read_text().replace("rotator: Rotator Simulator", "rotator: null"))
        for name in ("slave1", "slave2"):
            rig.start_node(name)
            rig.wait_up(name, timeout=60)
        cfg = MqttConfig(host=rig.broker.host, port=rig.broker.port, dead_after=5.0)
        transport = MqttTransport(cfg, f"test-master-{uuid.uuid4().hex[:8]}")
        tree = Topics(cfg.topic_prefix, cfg.discovery_prefix)
        registry = NodeRegistry(cfg.dead_after)
        registry.attach(transport, tree)
        client = CommandClient(transport, tree, "master")
        transport.start()
        try:
            assert transport.wait_connected(10)
            deadline = time.monotonic() + 15
            while set(registry.live("slave")) != {"slave1", "slave2"} and time.monotonic() < deadline:
                time.sleep(0.2)
            assert set(registry.live("slave")) == {"slave1", "slave2"}
            link = FakeLink()
            night = SimpleNamespace(report=link, cfg=SimpleNamespace(indi=IndiConfig(move_timeout=60.0)),
                                    participants=lambda: [RemoteParticipant(client, registry, n)
                                                          for n in ("slave1", "slave2")])
            last = CenterAttempt(1, *TARGET, solved_ra=TARGET[0], solved_dec=TARGET[1], rotation_deg=90.0)
            t0 = time.monotonic()
            entries, mine = rotate_rig(night, last, target_pa, settings, Token(1, "centering"))
            took = time.monotonic() - t0
            # the simulator's truth after it: the coupling mirrored the rotator (sign -1), read back here
            coupling = rig.couplings["slave1"]
            angle = coupling.angle
            rotation = coupling.wait_mirrored(angle, 5.0)
            sim_rotation = get_numbers(slave.host, slave.port, "CCD Simulator", "SIMULATOR_SETTINGS")["SIM_ROTATION"]
            published = (link.state["rotation"], [e["ota"] for e in link.events if e["type"] == "rotation"],
                         list(link.errors))
            # the night leaves centering during a long turn (~17 s at 10 deg/s): the slave's rotator stops
            token = Token(2, "centering")
            threading.Timer(4.0, lambda: token.cancel("rain")).start()
            t1 = time.monotonic()
            cancelled, _ = rotate_rig(night, last, target_pa + 170.0, settings, token)
            cancel_took = time.monotonic() - t1
            stopped = rig.couplings["slave1"].angle
            time.sleep(2.5)
            still = rig.couplings["slave1"].angle
        finally:
            client.close()
            transport.stop()
        assert mine is None  # no local participant here
        assert entries["slave2"]["status"] == "no_rotator" and "indi.rotator is null" in entries["slave2"]["reason"]
        result = entries["slave1"]
        assert result["status"] == "ok", result
        assert abs(result["error_deg"]) <= 0.5 and result["sign"] == -1 and result["moves"] == 2, result
        assert published == (entries, ["slave1", "slave2"], [])
        # the field is where the node says: west of the pier PA = 90 + SIM_ROTATION
        assert sim_rotation == pytest.approx(rotation)
        assert abs(wrap180(90.0 + rotation - target_pa)) <= 0.6, (angle, rotation)
        assert coupling.errors == []
        assert cancelled["slave1"]["status"] == "failed" and "cancelled" in cancelled["slave1"]["reason"], cancelled
        assert cancel_took < 12.0 and still == stopped, (cancel_took, stopped, still)
        log = rig.nodes["slave1"].log_text()
        assert "sign -1, from its first move" in log, log[-3000:]
        print(f"rotate: {result['moves']} moves, {took:.1f} s; PA {result['pa']:.2f} (target {target_pa}), "
              f"rotator {angle:.2f}, SIM_ROTATION {rotation:.2f}; cancelled 4 s into a 170 deg turn: answered after "
              f"{cancel_took:.1f} s, rotator stopped at {stopped:.2f}")
    except BaseException:
        print(rig.logs())
        raise
    finally:
        rig.stop()
