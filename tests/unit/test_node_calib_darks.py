"""A node's `darks` command over stand-in devices (no server): darks and bias into the node's library,
skipped the second time while younger than max_age; taken only when the OTA is covered (the sender
says so, a shutter, the dust cap), else waiting with the reason; the cooler within tolerance or the
sets wait; a camera without a cooler takes them at ambient and says so."""

from __future__ import annotations

import time

import pytest
from astropy.io import fits

from indisync.node.darks import NOT_COVERED
from tests.unit.test_node_calib import FakeCamera, FakeCap, FakeDevices, command, events_of, files_in, make_node

SETS = [{"kind": "dark", "exposure": 0.5, "binning": 1}, {"kind": "bias", "exposure": 0, "binning": 1}]


def darks(node, **args):
    return node.cmd_darks(command("darks", args), lambda *a, **k: None)


def dark_rig(tmp_path, cooler=True, temperature=-10.0, cap=None, shutter=False, cooling=True, **darks_settings):
    camera = FakeCamera(lambda t, kind, s: 4.5, temperature=temperature, cooler=cooler)
    settings = {"count": 3, "cool_wait_s": 1.0, **darks_settings}
    cam = {"shutter": shutter}
    if cooling:
        cam["cooling"] = {"setpoint": -10.0, "tolerance": 1.0}
    node = make_node(tmp_path, FakeDevices(camera, cap=cap), darks=settings, camera=cam)
    return node, camera


@pytest.mark.timeout(60)
def test_darks_and_bias_are_taken_when_covered_then_skipped_within_max_age(tmp_path):
    node, camera = dark_rig(tmp_path)
    first = darks(node, sets=SETS, covered=True)
    assert first.status == "ok", first.reason
    assert [(s["kind"], s["status"], s["count"]) for s in first.sets] == [("dark", "taken", 3), ("bias", "taken", 3)]
    assert [f[:2] for f in camera.frames] == [("dark", 0.5)] * 3 + [("bias", 0.01)] * 3  # bias: the shortest
    names = sorted(p.name for p in files_in(node))
    assert names == [f"BIAS_1_0s_000{n}.fits" for n in (1, 2, 3)] + [f"DARK_1_0.5s_000{n}.fits" for n in (1, 2, 3)]
    header = fits.getheader(next(p for p in files_in(node) if p.name.startswith("DARK")))
    assert header["IMAGETYP"] == "Dark Frame" and header["SET-TEMP"] == -10.0 and header["CCD-TEMP"] == -10.0
    assert first.sets[0]["setpoint"] == -10.0 and first.sets[0]["temperature"] == -10.0
    assert camera.setpoint == -10.0  # the cooler was told the setpoint
    second = darks(node, sets=SETS, covered=True)
    assert second.status == "ok" and [s["status"] for s in second.sets] == ["skipped", "skipped"]
    assert "days old is kept" in second.sets[0]["reason"] and second.sets[0]["age_days"] < 0.01
    assert len(camera.frames) == 6  # nothing more taken
    done = events_of(node, "calib_set_done")
    assert [d["status"] for d in done] == ["taken", "taken", "skipped", "skipped"]
    older = darks(node, sets=SETS, covered=True, max_age_days=1e-9)  # too old now: taken again
    assert [s["status"] for s in older.sets] == ["taken", "taken"]
    assert node.invalid == []  # every event and state passes the wire's schema


def test_nothing_covers_the_ota_the_sets_wait_saying_how_to_cover_it(tmp_path):
    node, camera = dark_rig(tmp_path)
    result = darks(node, sets=SETS)
    assert result.status == "waiting" and result.reason == NOT_COVERED
    assert "indisync darks --covered" in NOT_COVERED
    assert [s["status"] for s in result.sets] == ["waiting", "waiting"] and camera.frames == []


def test_a_shutter_or_a_dust_cap_covers_it(tmp_path):
    node, camera = dark_rig(tmp_path / "a", shutter=True)
    assert darks(node, sets=SETS[:1]).status == "ok"
    cap = FakeCap()
    node, camera = dark_rig(tmp_path / "b", cap=cap)
    assert darks(node, sets=SETS[:1]).status == "ok" and cap.closed is True
    node, camera = dark_rig(tmp_path / "c", cap=FakeCap(closes=False))  # it does not say closed
    assert darks(node, sets=SETS[:1]).status == "waiting"


@pytest.mark.timeout(60)
def test_the_cooler_not_within_tolerance_makes_the_sets_wait(tmp_path):
    node, camera = dark_rig(tmp_path, temperature=5.0, cool_wait_s=0.5)
    started = time.monotonic()
    result = darks(node, sets=SETS, covered=True)
    assert time.monotonic() - started < 5.0
    assert result.status == "waiting" and [s["status"] for s in result.sets] == ["waiting", "waiting"]
    assert "5.0 C" in result.reason and "setpoint -10 C" in result.reason and "darks.cool_wait_s" in result.reason
    assert camera.frames == [] and node.invalid == []


def test_without_a_cooler_darks_are_taken_at_ambient_and_said(tmp_path):
    node, camera = dark_rig(tmp_path, cooler=False, temperature=None)
    result = darks(node, sets=SETS[:1], covered=True)
    assert result.status == "ok" and "no cooler" in result.reason
    assert result.sets[0]["setpoint"] is None
    assert darks(node, sets=SETS[:1], covered=True).sets[0]["status"] == "skipped"  # ambient matches ambient


def test_no_sets_is_nothing(tmp_path):
    node, camera = dark_rig(tmp_path)
    assert darks(node, sets=[], covered=True).status == "nothing"
