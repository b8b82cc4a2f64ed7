"""A node's `flats` command over stand-in devices (no server): sky flats follow a darkening sky and
keep only frames in the ADU band, an unreachable band fails that set with the reason and the next
set still runs, a missing filter fails its set naming the wheel's filters, an abort stops the run
(frames kept so far stay), the run's time bounds it; panel flats train a brightness once and re-use
it, a node without a panel answers no_panel. The stand-ins here serve the other test_node_calib files.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from indisync.config import load_config
from indisync.node.slave import SlaveNode
from indisync.protocol import messages
from indisync.protocol.commands import Command
from indisync.protocol.messages import now_iso

FULL = 65535.0


class Sky:
    """A twilight: ADU/s of a clear filter ``r0`` at ``t0``, halving every ``halving_s`` (dusk)."""

    def __init__(self, r0: float, halving_s: float, direction: str = "dusk", factors: dict | None = None):
        self.r0, self.halving_s, self.direction = r0, halving_s, direction
        self.t0 = time.time()
        self.factors = factors or {}

    def rate(self, t: float, filter_name: str | None) -> float:
        sign = -1.0 if self.direction == "dusk" else 1.0
        return self.r0 * self.factors.get(filter_name, 1.0) * 2.0 ** (sign * (t - self.t0) / self.halving_s)


class FakeWheel:
    def __init__(self, names):
        self.names = list(names)
        self.current = self.names[0]
        self.moves = []

    def select(self, name):
        if name not in self.names:
            raise AssertionError(f"select({name!r}) of a filter the wheel lacks")
        self.current = name
        self.moves.append(name)


class FakeCamera:
    """Frames whose mean is what the light gives (``light(t, frame_type, seconds) -> ADU``), clipped."""

    def __init__(self, light, wheel=None, temperature=None, cooler=False, gain=None, offset=None, sleep=0.0):
        self.light, self.wheel, self.sleep = light, wheel, sleep
        self._temperature, self.has_cooler = temperature, cooler
        self.setpoint = None
        self.gain, self.offset = gain, offset
        self.full_scale, self.min_exposure = FULL, 0.01
        self.frames: list[tuple[str, float, int]] = []
        self.aborted = threading.Event()
        self.gains_set = []

    @property
    def temperature(self):
        return self._temperature

    def set_temperature(self, value):
        self.setpoint = value

    def set_gain(self, value):
        self.gains_set.append(value)
        self.gain = value
        return value

    def set_offset(self, value):
        self.offset = value
        return value

    def abort(self):
        self.aborted.set()

    def expose(self, seconds, binning, frame_type):
        from indisync.errors import ExposureAborted

        start = time.time()
        if self.sleep and self.aborted.wait(self.sleep):
            self.aborted.clear()
            raise ExposureAborted("aborted")
        self.frames.append((frame_type, seconds, binning))
        mean = min(self.light(start, frame_type, seconds), 65000.0)
        hdu = fits.PrimaryHDU(np.full((16, 16), mean, dtype=np.float32))
        hdu.header["EXPTIME"] = seconds
        return hdu


class FakePanel:
    name = "Panel"

    def __init__(self, dimmable=True):
        self.on, self.level, self.dimmable = False, 0.0, dimmable
        self.brightness_range = (0.0, 255.0) if dimmable else None
        self.sets = []

    @property
    def brightness(self):
        return self.level if self.dimmable else None

    def turn_on(self, cancel=None):
        self.on = True

    def turn_off(self):
        self.on = False

    def set_brightness(self, value, cancel=None):
        self.level = float(value)
        self.sets.append(self.level)
        return self.level


class FakeCap:
    name = "Cap"

    def __init__(self, closes=True):
        self.closed, self.closes = False, closes

    def close(self, timeout=None):
        self.closed = True if self.closes else None

    def open(self, timeout=None, cancel=None):
        self.closed = False


class FakeDevices:
    def __init__(self, camera, wheel=None, panel=None, cap=None):
        self.camera, self.filter_wheel, self.light_panel, self.dust_cap = camera, wheel, panel, cap
        self.focuser = self.rotator = self.mount = self.dome = None


def make_node(tmp_path, devices, flats=None, darks=None, camera=None, indi=None, name="ota1"):
    data = {"node": {"name": name, "role": "slave"}, "storage": {"directory": str(tmp_path / "store")},
            "slave": {"filters": ["L"], "exposure": 2}, "flats": flats or {}, "darks": darks or {}}
    if camera is not None:
        data["camera"] = camera
    if indi is not None:
        data["indi"] = indi
    cfg = load_config(data=data)
    node = SlaveNode(cfg)
    node.events, node.states, node.invalid = [], [], []
    state = {"role": "slave", "phase": "idle", "version": "test"}

    def event(event_type, **fields):
        try:  # as the wire checks it (run.report would only log a refusal)
            messages.make(event_type, name, fields)
        except Exception as exc:  # noqa: BLE001
            node.invalid.append(f"{event_type}: {exc}")
        node.events.append((event_type, fields))

    def update_state(**fields):
        state.update(fields)
        try:
            messages.make("state", name, state)
        except Exception as exc:  # noqa: BLE001
            node.invalid.append(f"state: {exc}")
        node.states.append(fields)

    node.link.event, node.link.update_state = event, update_state
    node.supervisor.get = lambda: devices
    return node


def command(name, args, sender="test"):
    return Command(id=f"c{time.monotonic_ns()}", name=name, sender=sender, args=args, ts=now_iso())


def flats(node, **args):
    return node.cmd_flats(command("flats", args), lambda *a, **k: None)


def events_of(node, kind):
    return [fields for k, fields in node.events if k == kind]


def files_in(node) -> list[Path]:
    return sorted((Path(node.cfg.storage.directory) / "calib").rglob("*.fits"))


def means(paths) -> list[float]:
    return [float(fits.getdata(p).mean()) for p in paths]


# ---- sky flats ------------------------------------------------------------------------------------
def sky_rig(tmp_path, sky, names=("L", "R", "Ha"), **flats_settings):
    wheel = FakeWheel(names)
    camera = FakeCamera(lambda t, kind, s: sky.rate(t, wheel.current) * s if kind == "flat" else 5.0, wheel)
    settings = {"count": 4, "min_exposure": 0.01, "max_exposure": 5.0, "sky_halving_s": sky.halving_s,
                **flats_settings}
    return make_node(tmp_path, FakeDevices(camera, wheel), flats=settings), camera, wheel


@pytest.mark.timeout(60)
def test_sky_flats_keep_count_frames_in_band_per_set_in_the_order_the_dusk_allows(tmp_path):
    sky = Sky(r0=200_000.0, halving_s=20.0, factors={"R": 0.5, "Ha": 0.05})
    node, camera, wheel = sky_rig(tmp_path, sky)
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "L"}, {"filter": "Ha"}, {"filter": "R"}])
    assert result.status == "ok", result.reason
    assert [s["filter"] for s in result.sets] == ["Ha", "R", "L"]  # narrowband first at dusk
    assert result.full_scale == FULL
    for s in result.sets:
        assert s["status"] == "ok" and s["kept"] == 4 and s["taken"] >= 5  # a test frame each
        assert all(0.3 * FULL <= a <= 0.5 * FULL for a in s["adu"])
    kept = files_in(node)
    assert len(kept) == 12 and all(0.3 * FULL <= m <= 0.5 * FULL for m in means(kept))
    header = fits.getheader(kept[0])
    assert header["IMAGETYP"] == "Flat Field" and header["FILTER"] in ("Ha", "R", "L")
    assert kept[0].parent.parent.name == "ota1" and kept[0].parent.parent.parent.name == "calib"
    progress = events_of(node, "calib_progress")
    assert {p["frame"] for p in progress} >= {"test", "kept"}
    assert all(p["band"] == [round(0.3 * FULL, 1), round(0.5 * FULL, 1)] for p in progress)
    done = events_of(node, "calib_set_done")
    assert [(d["filter"], d["status"], d["kept"]) for d in done] == [("Ha", "ok", 4), ("R", "ok", 4), ("L", "ok", 4)]
    assert [r.set.filter for r in node.calib_library().flat_sets("ota1")] == ["Ha", "R", "L"]
    assert node.states[-1] == {"phase": "idle", "calib": None}
    assert not node.device_lock.locked()
    assert node.invalid == []  # every event and state passes the wire's schema


@pytest.mark.timeout(60)
def test_a_frame_out_of_band_is_discarded_and_said(tmp_path):
    # the sky jumps brighter after the test frame: the first ramped frame lands above the band
    sky = Sky(r0=50_000.0, halving_s=60.0)
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L",), count=2)
    real_light = camera.light
    calls = []

    def light(t, kind, s):
        calls.append(s)
        return real_light(t, kind, s) * (3.0 if len(calls) == 2 else 1.0)

    camera.light = light
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "L"}])
    assert result.status == "ok" and result.sets[0]["discarded"] >= 1 and result.sets[0]["kept"] == 2
    discarded = [p for p in events_of(node, "calib_progress") if p["frame"] == "discarded"]
    assert len(discarded) == result.sets[0]["discarded"] and "above the band" in discarded[0]["reason"]
    assert result.sets[0]["taken"] == 1 + 2 + result.sets[0]["discarded"]  # test + kept + discarded
    assert len(files_in(node)) == 2  # a discarded frame is never written


@pytest.mark.timeout(60)
def test_an_unreachable_band_fails_that_set_with_the_reason_and_the_next_set_still_runs(tmp_path):
    # min = max = 0.02 s: the dim R sky gives far too little; L is bright enough
    sky = Sky(r0=1_000_000.0, halving_s=600.0, factors={"R": 0.01})
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L", "R"), count=2, min_exposure=0.02, max_exposure=0.02)
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "R"}, {"filter": "L"}])
    by = {s["filter"]: s for s in result.sets}
    assert by["R"]["status"] == "failed" and "too dark" in by["R"]["reason"]
    assert "flats.max_exposure 0.02 s" in by["R"]["reason"]
    assert by["L"]["status"] == "ok" and by["L"]["kept"] == 2
    assert result.status == "partial" and "R bin1" in result.reason
    assert [f for f in wheel.moves if f in ("R", "L")][:2] == ["R", "L"]


@pytest.mark.timeout(60)
def test_a_filter_the_wheel_lacks_fails_its_set_naming_the_wheels_filters(tmp_path):
    sky = Sky(r0=100_000.0, halving_s=600.0)
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L", "R"), count=1)
    result = flats(node, mode="sky", direction="dawn", sets=[{"filter": "OIII"}, {"filter": "L"}])
    by = {s["filter"]: s for s in result.sets}
    assert by["OIII"]["status"] == "failed"
    assert by["OIII"]["reason"] == "no filter OIII on this wheel (FILTER_NAME: L, R)"
    assert by["L"]["status"] == "ok"


@pytest.mark.timeout(60)
def test_abort_stops_the_run_keeps_what_was_taken_and_starts_no_more_sets(tmp_path):
    sky = Sky(r0=100_000.0, halving_s=600.0)
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L", "R"), count=50)
    camera.sleep = 0.05

    def abort_later():
        while len([f for f in camera.frames]) < 4:
            time.sleep(0.01)
        node.cmd_abort(command("abort", {}), lambda *a, **k: None)

    threading.Thread(target=abort_later, daemon=True).start()
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "R"}, {"filter": "L"}])
    assert result.status == "stopped"
    first, second = result.sets
    assert first["status"] == "stopped" and 1 <= first["kept"] < 50
    assert second["status"] == "stopped" and second["reason"].startswith("not started") and second["taken"] == 0
    assert len(files_in(node)) == first["kept"]
    assert node.invalid == []


@pytest.mark.timeout(60)
def test_the_runs_time_bounds_it(tmp_path):
    sky = Sky(r0=100_000.0, halving_s=600.0)
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L", "R"), count=1000)
    camera.sleep = 0.02
    started = time.monotonic()
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "R"}, {"filter": "L"}], timeout=1.0)
    assert time.monotonic() - started < 5.0
    first, second = result.sets
    assert first["status"] == "partial" and "ran out" in first["reason"] and first["kept"] > 0
    assert second["status"] == "failed" and second["reason"].startswith("not started")
    assert result.status == "partial"


def test_sky_flats_set_the_sets_gain_and_restore_it(tmp_path):
    sky = Sky(r0=100_000.0, halving_s=600.0)
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L",), count=1)
    camera.gain = 90.0
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "L", "gain": 100}])
    assert result.status == "ok" and camera.gains_set == [100.0, 90.0] and camera.gain == 90.0
    assert fits.getheader(files_in(node)[0])["GAIN"] == 100.0


def test_no_sets_is_nothing_and_sky_flats_need_a_direction(tmp_path):
    node, camera, wheel = sky_rig(tmp_path, Sky(1.0, 100.0))
    assert flats(node, mode="sky", direction="dusk").status == "nothing"
    with pytest.raises(Exception, match="direction"):
        flats(node, mode="sky", sets=[{"filter": "L"}])
    assert not node.device_lock.locked()


# ---- panel flats ----------------------------------------------------------------------------------
def panel_rig(tmp_path, panel=None, cap=None, indi=None, **flats_settings):
    wheel = FakeWheel(["L", "R"])
    panel = panel or FakePanel()
    factors = {"L": 1.0, "R": 0.4}

    def light(t, kind, s):
        if kind != "flat":
            return 5.0
        level = panel.level if panel.dimmable else 100.0
        return 5.0 + (400.0 * level * factors[wheel.current] * s if panel.on else 0.0)

    camera = FakeCamera(light, wheel)
    settings = {"count": 3, "min_exposure": 0.01, "max_exposure": 10.0, "panel_exposure": 1.0,
                "panel_settle_s": 0, **flats_settings}
    node = make_node(tmp_path, FakeDevices(camera, wheel, panel, cap), flats=settings,
                     indi=indi or {"light_panel": "Panel"})
    return node, camera, panel


def test_panel_flats_train_once_then_reuse_without_a_search(tmp_path):
    node, camera, panel = panel_rig(tmp_path, cap=FakeCap())
    first = flats(node, mode="panel", sets=[{"filter": "L"}, {"filter": "R"}])
    assert first.status == "ok", first.reason
    assert [s["trained"] for s in first.sets] == ["search", "search"]
    assert all(s["taken"] > s["kept"] == 3 for s in first.sets)  # search frames were taken
    assert all(0.3 * FULL <= m <= 0.5 * FULL for m in means(files_in(node)))
    assert not panel.on and node.supervisor.get().dust_cap.closed  # the light off at the end; the cap closed
    tests_before = len([p for p in events_of(node, "calib_progress") if p["frame"] == "test"])
    second = flats(node, mode="panel", sets=[{"filter": "L"}, {"filter": "R"}])
    assert [s["trained"] for s in second.sets] == ["reused", "reused"]
    assert [s["taken"] for s in second.sets] == [3, 3]  # no search frame
    assert len([p for p in events_of(node, "calib_progress") if p["frame"] == "test"]) == tests_before
    assert [s["brightness"] for s in second.sets] == [s["brightness"] for s in first.sets]
    assert node.invalid == []


def test_a_reused_training_that_misses_the_band_is_trained_again(tmp_path):
    node, camera, panel = panel_rig(tmp_path)
    flats(node, mode="panel", sets=[{"filter": "L"}])
    real = camera.light
    camera.light = lambda t, kind, s: real(t, kind, s) * 0.3  # the panel aged: a third of the light
    result = flats(node, mode="panel", sets=[{"filter": "L"}])
    assert result.status == "ok" and result.sets[0]["trained"] == "search" and result.sets[0]["discarded"] == 1


def test_a_node_without_a_light_panel_answers_no_panel(tmp_path):
    node, camera, panel = panel_rig(tmp_path, indi={"light_panel": None})
    result = flats(node, mode="panel", sets=[{"filter": "L"}])
    assert result.status == "no_panel" and "indi.light_panel is null" in result.reason
    assert camera.frames == []
    node, camera, panel = panel_rig(tmp_path, indi={"light_panel": "Panel"})
    node.supervisor.get().light_panel = None  # configured but not on the server
    result = flats(node, mode="panel", sets=[{"filter": "L"}])
    assert result.status == "no_panel" and "is not on indiserver" in result.reason


def test_a_panel_that_cannot_reach_the_band_fails_the_set_and_turns_the_light_off(tmp_path):
    node, camera, panel = panel_rig(tmp_path, max_exposure=0.02)  # far too short for this panel
    result = flats(node, mode="panel", sets=[{"filter": "R"}, {"filter": "L"}])
    assert [s["status"] for s in result.sets] == ["failed", "failed"]
    assert "too dim" in result.sets[0]["reason"] and not panel.on


def test_light_frames_say_what_their_calibration_must_match(tmp_path):
    from indisync.node.imaging import FrameRequest, take_frame
    from indisync.protocol import messages

    wheel = FakeWheel(["L"])
    camera = FakeCamera(lambda t, kind, s: 1000.0, wheel, gain=120.0, offset=30.0)
    camera.setpoint = -10.0
    devices = FakeDevices(camera, wheel)
    node = make_node(tmp_path, devices)
    record = take_frame(devices, node.cfg, FrameRequest(duration=1.0, filter_name="L", binning=2),
                        measure_inline=False)
    fields = record.event_fields()
    assert (fields["frame_type"], fields["binning"], fields["gain"], fields["offset"], fields["set_temperature"],
            fields["rotator_angle"]) == ("light", 2, 120.0, 30.0, -10.0, None)
    env = messages.make("exposure_done", "ota1", {"exposure_id": "1", "status": "ok", **fields})
    assert env.payload["gain"] == 120.0


@pytest.mark.timeout(60)
def test_a_dusk_still_too_bright_at_the_shortest_exposure_is_waited_for(tmp_path):
    # 0.01 s gives ~60,000 ADU now, above the band: the sky must darken about 2x (one halving, 2 s)
    sky = Sky(r0=6_000_000.0, halving_s=2.0)
    node, camera, wheel = sky_rig(tmp_path, sky, names=("L",), count=2, min_exposure=0.01, max_exposure=1.0)
    started = time.monotonic()
    result = flats(node, mode="sky", direction="dusk", sets=[{"filter": "L"}])
    assert result.status == "ok", result.reason
    assert 0.5 < time.monotonic() - started < 20.0
    assert any(s.get("phase") == "waiting" for s in node.states)  # said while it waited
    assert all(0.3 * FULL <= m <= 0.5 * FULL for m in means(files_in(node)))
