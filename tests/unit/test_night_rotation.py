"""The centre action's rotate step (issue 16, item 5): after a good centring with an aim that has a
position angle, every OTA rotates at once (bounded), each result is published and logged, one
without a rotator says so, a failure is an error event and never the night's end, and the
co-alignment that follows uses the master's field as it is after rotating. No servers."""

from __future__ import annotations

import dataclasses
import threading
from types import SimpleNamespace

import pytest

from indisync.acquire import centering
from indisync.acquire.settings import AcquireSettings
from indisync.contracts import RotateResult
from indisync.night.actions import center as night_center
from indisync.night.arbiter import MotionArbiter
from indisync.night.machine import NightPlan
from indisync.night.rig import Aim, Outcome
from indisync.night.token import Token
from tests.unit.test_night_centering import FakeLink


def solve_report(ra, dec, rotation):
    return {"ra": ra, "dec": dec, "rotation_deg": rotation, "scale_arcsec": 1.19, "parity": 1,
            "field_w_arcmin": 25.4, "field_h_arcmin": 20.3, "offset_arcsec": None, "offset_east_arcsec": None,
            "offset_north_arcsec": None, "offset_from": None, "reference_ra": None, "reference_dec": None,
            "scale_hint_arcsec": 1.19, "scale_source": "x", "stars": 300, "index": "i", "seconds": 2.0}


class Node:
    def __init__(self, name, local=False, rotate=None, solve=None, delay=0.0):
        self.name, self.local, self._rotate, self._solve, self.delay = name, local, rotate, solve, delay
        self.rotations, self.solves = [], []

    def rotate(self, pa, hint, timeout, cancel=None):
        self.rotations.append((pa, hint, timeout, cancel))
        if self.delay:
            threading.Event().wait(self.delay)
        return self._rotate

    def solve(self, hint, timeout):
        self.solves.append(hint)
        return self._solve


def ok_rotation(pa, solved, moves=2, sign=1, **field):
    return Outcome(True, RotateResult(status="ok", target_pa=pa % 360, pa=solved, error_deg=pa - solved, angle=40.0,
                                      moves=moves, solves=moves + 1, sign=sign, seconds=12.0, **field).to_wire())


def make_rig(nodes, aim, link, acquire=None):
    cfg = SimpleNamespace(acquire=acquire or AcquireSettings(), indi=SimpleNamespace(move_timeout=30.0),
                          master=SimpleNamespace(target="M31", target_coords=SimpleNamespace(ra=aim.ra, dec=aim.dec)))
    devices = SimpleNamespace(mount=object(), camera=object())
    return SimpleNamespace(report=link, stop_event=threading.Event(), device_lock=threading.Lock(), cfg=cfg,
                           devices=lambda: devices, arbiter=MotionArbiter(), participants=lambda: nodes,
                           aim=lambda: aim)


def centred(monkeypatch, rotation=90.0):
    def fake_center(mount, camera, target, settings, on_attempt=None, cancel=None):
        result = centering.CenterResult(target, centered=True, final_offset_arcsec=2.0)
        result.attempts.append(centering.CenterAttempt(1, target.ra, target.dec, solved_ra=target.ra,
                                                       solved_dec=target.dec, offset_arcsec=2.0, rotation_deg=rotation,
                                                       field_w_arcmin=25.4, field_h_arcmin=20.3, parity=1))
        return result

    monkeypatch.setattr(centering, "center", fake_center)


def run_center(rig):
    ctx = SimpleNamespace(rig=rig, plan=NightPlan(slew=True, center=True), token=Token(3, "centering"))
    return night_center.center(ctx), ctx.token


def test_every_ota_rotates_at_once_then_coaligns_with_the_masters_rotated_field(monkeypatch):
    centred(monkeypatch, rotation=90.0)
    aim = Aim("M31", 10.68, 41.27, pa=30.0)
    master = Node("master", local=True, rotate=ok_rotation(30.0, 30.2, ra=10.68, dec=41.27, field_w_arcmin=25.4,
                                                           field_h_arcmin=20.3, parity=1), delay=0.3)
    slave1 = Node("slave1", rotate=ok_rotation(30.0, 29.6, sign=-1),
                  solve=Outcome(True, solve_report(10.68, 41.27, 29.6)), delay=0.3)
    slave2 = Node("slave2", rotate=Outcome(True, RotateResult(status="no_rotator", reason="no rotator (indi.rotator "
                                                              "is null)", target_pa=30.0).to_wire()),
                  solve=Outcome(True, solve_report(10.68, 41.27, 90.0)))
    slave3 = Node("slave3", rotate=Outcome(True, RotateResult(status="failed", target_pa=30.0, pa=80.0, moves=1,
                                                              reason="the rotator failed: did not finish").to_wire()),
                  solve=Outcome(True, solve_report(10.68, 41.27, 80.0)))
    link = FakeLink()
    rig = make_rig([master, slave1, slave2, slave3], aim, link)
    import time

    t0 = time.monotonic()
    answer, token = run_center(rig)
    assert answer.ok  # a failed rotation never fails the centring, nor the night
    assert time.monotonic() - t0 < 0.55, "the OTAs did not rotate at once"
    for node in (master, slave1, slave2, slave3):
        pa, hint, timeout, cancel = node.rotations[0]
        assert pa == 30.0 and hint == {"ra": 10.68, "dec": 41.27} and cancel is token
        assert timeout == night_center.rotate_wait(rig.cfg.acquire, 30.0)
    rotation = link.state["rotation"]
    assert rotation["master"]["status"] == "ok" and rotation["slave1"]["sign"] == -1
    assert rotation["slave2"]["status"] == "no_rotator" and rotation["slave3"]["status"] == "failed"
    assert [e["ota"] for e in link.events if e["type"] == "rotation"] == ["master", "slave1", "slave2", "slave3"]
    assert len(link.errors) == 1 and "slave3" in link.errors[0] and "the rotator failed" in link.errors[0]
    # the co-alignment compares against the master's field after it turned (PA 30.2), not its centring's (90)
    coalign = link.state["coalign"]
    assert coalign["slave1"]["rotation_diff_deg"] == pytest.approx(-0.6, abs=1e-3)
    assert coalign["slave2"]["rotation_diff_deg"] == pytest.approx(59.8, abs=1e-3)
    types = [e["type"] for e in link.events]
    assert types.index("rotation") < types.index("coalignment")


def test_a_silent_or_failing_node_is_a_failed_entry_with_the_reason():
    link = FakeLink()
    nodes = [Node("master", local=True, rotate=Outcome(False, reason="busy: another exposure")),
             Node("slave1", rotate=Outcome(False, reason="no rotate answer (node lost)", answered=False)),
             Node("slave2", rotate=Outcome(True, {"status": "spinning"}))]
    rig = make_rig(nodes, Aim("X", 10.0, 20.0, pa=100.0), link)
    last = centering.CenterAttempt(1, 10.0, 20.0, solved_ra=10.0, solved_dec=20.0, rotation_deg=90.0)
    entries, mine = night_center.rotate_rig(rig, last, 100.0, rig.cfg.acquire, Token(1, "centering"))
    assert mine is None
    assert entries["master"]["reason"] == "its rotate failed: busy: another exposure"
    assert entries["slave1"]["reason"].startswith("no rotate answer within")
    assert entries["slave2"]["status"] == "failed" and "answered something else" in entries["slave2"]["reason"]
    assert len(link.errors) == 3
    assert night_center.describe_rotation("slave1", entries["slave1"]).startswith("rotation slave1: FAILED: no rotate")


def test_without_a_pa_nothing_rotates(monkeypatch):
    centred(monkeypatch)
    node = Node("slave1", rotate=ok_rotation(0.0, 0.0), solve=Outcome(True, solve_report(10.68, 41.27, 90.0)))
    link = FakeLink()
    rig = make_rig([Node("master", local=True), node], Aim("M31", 10.68, 41.27, pa=None), link)
    answer, _ = run_center(rig)
    assert answer.ok and node.rotations == [] and link.state.get("rotation") is None and node.solves


def test_the_centering_deadline_covers_the_rotation():
    a = AcquireSettings()
    assert night_center.centering_timeout(a) >= night_center.centering_timeout(a, rotate=False) + \
        night_center.rotate_wait(a)
    assert night_center.rotate_wait(dataclasses.replace(a, rotate_attempts=5)) > night_center.rotate_wait(a)


def test_the_masters_own_rotation_runs_in_process_and_a_cancel_aborts_it():
    from indisync.contracts import RotateArgs
    from indisync.node.master_rig import LocalParticipant

    class Master:
        name = "master"

        def __init__(self):
            self.abort_event = threading.Event()
            self.args = None

        def cmd_rotate(self, command, progress):
            self.args = RotateArgs.from_wire(command.args)
            self.abort_event.clear()  # as the abort gate does when a rotation begins
            aborted = self.abort_event.wait(5.0)
            return RotateResult(status="failed" if aborted else "ok", target_pa=self.args.pa % 360,
                                reason="cancelled" if aborted else None)

    master = Master()
    cancel = threading.Event()
    threading.Timer(0.4, cancel.set).start()
    import time

    t0 = time.monotonic()
    outcome = LocalParticipant(master).rotate(-20.0, {"ra": 10.0, "dec": 20.0}, 30.0, cancel=cancel)
    assert time.monotonic() - t0 < 2.0
    assert master.args == RotateArgs(pa=-20.0, ra=10.0, dec=20.0)
    assert outcome.ok and outcome.result["status"] == "failed" and outcome.result["reason"] == "cancelled"
