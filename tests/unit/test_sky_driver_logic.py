"""The sky driver without indiserver: its XML, and its requests answered on a fake clock."""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET

import pytest

from indisync.sim.sky import indixml as X
from indisync.sim.sky.driver import GUIDER, MOUNT, SkyDriver
from indisync.sim.sky.render import read_fits_header
from indisync.sim.sky.truth import OracleController, guiding_windows, truth_stats


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def drv():
    out: list[str] = []
    clock = Clock()
    d = SkyDriver(out.append, clock=clock)
    d.out, d.fake_clock = out, clock
    return d


def _req(d, xml: str) -> list[ET.Element]:
    start = len(d.out)
    for r in X.RequestParser().feed(xml.encode()):
        d.handle(r)
    return [ET.fromstring(s) for s in d.out[start:]]


def _new(d, device, name, kind, values):
    items = "".join(f'<one{kind} name="{k}">{v}</one{kind}>' for k, v in values.items())
    return _req(d, f'<new{kind}Vector device="{device}" name="{name}">{items}</new{kind}Vector>')


def _run(d, seconds, step=0.01):
    end = d.fake_clock.t + seconds
    while d.fake_clock.t < end - 1e-9:
        d.fake_clock.t = min(end, d.fake_clock.t + step)
        d.tick()


def _connect(d, device):
    _new(d, device, "CONNECTION", "Switch", {"CONNECT": "On", "DISCONNECT": "Off"})


def test_get_properties_defines_what_our_device_classes_use(drv):
    elems = _req(drv, '<getProperties version="1.7"/>')
    names = {(e.get("device"), e.get("name")) for e in elems}
    for prop in ("CONNECTION", "EQUATORIAL_EOD_COORD", "ON_COORD_SET", "TELESCOPE_PARK", "TELESCOPE_TRACK_STATE",
                 "TELESCOPE_PIER_SIDE", "TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE", "GUIDE_RATE",
                 "TELESCOPE_ABORT_MOTION", "SKY_TRUE_ERROR", "SKY_PE"):
        assert (MOUNT, prop) in names
    for prop in ("CCD_EXPOSURE", "CCD1", "CCD_INFO", "CCD_BINNING", "CCD_FRAME", "UPLOAD_MODE",
                 "TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE", "CCD_ABORT_EXPOSURE"):
        assert (GUIDER, prop) in names
    one = _req(drv, f'<getProperties version="1.7" device="{MOUNT}" name="GUIDE_RATE"/>')
    assert [(e.tag, e.get("name")) for e in one] == [("defNumberVector", "GUIDE_RATE")]
    assert _req(drv, '<getProperties version="1.7" device="Telescope Simulator"/>') == []


def test_a_pulse_before_connecting_is_refused_with_the_reason(drv):
    [answer] = _new(drv, MOUNT, "TELESCOPE_TIMED_GUIDE_WE", "Number", {"TIMED_GUIDE_W": 100})
    assert answer.get("state") == "Alert" and "connect the device first" in answer.get("message")


def test_bad_values_are_refused_and_read_only_properties_stay(drv):
    [answer] = _new(drv, MOUNT, "SKY_PE", "Number", {"PERIOD": 0})
    assert answer.get("state") == "Alert" and "outside" in answer.get("message")
    [answer] = _new(drv, MOUNT, "SKY_PE", "Number", {"PERIOD": "abc"})
    assert "not a number" in answer.get("message")
    [answer] = _new(drv, MOUNT, "SKY_TRUE_ERROR", "Number", {"RA": 1})
    assert "read-only" in answer.get("message")


def test_parameters_take_effect_and_read_back(drv):
    [answer] = _new(drv, MOUNT, "SKY_PE", "Number", {"AMPLITUDE": 5.5, "PERIOD": 300})
    assert answer.get("state") == "Ok"
    assert drv.sky.params.pe_amplitude == 5.5 and drv.sky.params.pe_period == 300
    assert drv.prop(MOUNT, "SKY_PE")["AMPLITUDE"] == 5.5
    _new(drv, GUIDER, "SKY_CAMERA_FIELD", "Number", {"TRANSPARENCY": 0.25, "STARS": 7})
    assert drv.cameras[GUIDER].params.transparency == 0.25 and len(drv.cameras[GUIDER].field) == 7


def test_eod_coords_go_out_every_poll_and_follow_a_small_pulse(drv):
    _connect(drv, MOUNT)
    _new(drv, MOUNT, "TELESCOPE_PARK", "Switch", {"UNPARK": "On"})
    _new(drv, MOUNT, "EQUATORIAL_EOD_COORD", "Number", {"RA": 6.0, "DEC": 30.0})
    _run(drv, 10.0)
    assert (drv.ra, drv.dec) == (6.0, 30.0) and drv.tracking
    start = len(drv.out)
    _run(drv, 1.0)
    eods = [s for s in drv.out[start:] if 'name="EQUATORIAL_EOD_COORD"' in s]
    assert len(eods) >= 9  # every 0.1 s poll, not only on a change
    _new(drv, MOUNT, "TELESCOPE_TIMED_GUIDE_WE", "Number", {"TIMED_GUIDE_W": 100, "TIMED_GUIDE_E": 0})
    _run(drv, 0.5)
    ra = drv.prop(MOUNT, "EQUATORIAL_EOD_COORD")["RA"]
    # 100 ms at 0.5 sidereal: 0.05 s of time, half INDI 1.9.9's 0.1 s deadband
    assert (6.0 - ra) * 3600 == pytest.approx(0.05, rel=0.01)


def test_an_exposure_sends_a_fits_with_its_truth_then_ok(drv):
    _connect(drv, GUIDER)
    [busy] = _new(drv, GUIDER, "CCD_EXPOSURE", "Number", {"CCD_EXPOSURE_VALUE": 1.0})
    assert busy.get("state") == "Busy"
    start = len(drv.out)
    _run(drv, 1.05)
    sent = [ET.fromstring(s) for s in drv.out[start:] if "CCD" in s]
    blob = next(e for e in sent if e.tag == "setBLOBVector")
    done = [e for e in sent if e.get("name") == "CCD_EXPOSURE"][-1]
    assert done.get("state") == "Ok" and sent.index(blob) < sent.index(done)
    one = blob.find("oneBLOB")
    data = base64.b64decode(one.text)
    assert one.get("format") == ".fits" and int(one.get("size")) == len(data)
    header = read_fits_header(data)
    assert float(header["SCALE"]) == pytest.approx(206.264806 * 3.75 / 600, rel=1e-6)
    assert {"TRUERA", "TRUEDEC", "TRUEDX", "TRUEDY", "SEEINGRA"} <= set(header)


def test_park_slews_at_a_finite_rate_then_stops_tracking(drv):
    _connect(drv, MOUNT)
    _new(drv, MOUNT, "TELESCOPE_PARK", "Switch", {"UNPARK": "On"})
    _new(drv, MOUNT, "EQUATORIAL_EOD_COORD", "Number", {"RA": 6.0, "DEC": 30.0})
    _run(drv, 2.0)
    assert drv.slew_to is not None and 30.0 < drv.dec < 90.0  # 10 deg/s: 60 deg take 6 s
    _run(drv, 6.0)
    assert drv.slew_to is None and drv.prop(MOUNT, "TELESCOPE_PIER_SIDE")["PIER_WEST"]  # 3 h east of the meridian
    _new(drv, MOUNT, "TELESCOPE_PARK", "Switch", {"PARK": "On"})
    _run(drv, 10.0)
    assert drv.parked and not drv.tracking and drv.prop(MOUNT, "TELESCOPE_PARK").state == "Ok"
    [refused] = _new(drv, MOUNT, "EQUATORIAL_EOD_COORD", "Number", {"RA": 6.0, "DEC": 30.0})
    assert refused.get("state") == "Alert" and "unpark" in refused.get("message")


def test_request_parser_takes_split_input():
    p = X.RequestParser()
    assert p.feed(b'<newNumberVector device="a" name="b"><oneNumber name="X">1') == []
    [r] = p.feed(b'.5</oneNumber></newNumberVector>\n<enableBLOB device="a">Also</enableBLOB>')
    assert (r.kind, r.device, r.name, r.values) == ("Number", "a", "b", {"X": "1.5"})


# ---- truth.py ----------------------------------------------------------------------------------

def test_guiding_windows_leave_settling_out():
    events = [(0.0, "started"), (5.0, "settled"), (20.0, "dither"), (32.0, "settled"), (50.0, "dither"),
              (70.0, "settle_failed"), (80.0, "stopped")]
    assert guiding_windows(events, 90.0) == [(5.0, 20.0), (32.0, 50.0), (70.0, 80.0)]
    assert guiding_windows([(0.0, "started"), (3.0, "settled")], 9.0) == [(3.0, 9.0)]


def test_truth_stats_are_about_each_windows_mean():
    samples = [(t, 1.0 + (0.5 if t % 2 else -0.5), 10.0) for t in range(10)] + \
              [(t, 5.0, 20.0 + (0.5 if t % 2 else -0.5)) for t in range(20, 30)]
    s = truth_stats(samples, [(0, 9), (20, 29)], pixel_scale=2.0)
    assert s["rms_ra_arcsec"] == pytest.approx(0.5 / math.sqrt(2))
    assert s["rms_dec_arcsec"] == pytest.approx(0.5 / math.sqrt(2))
    assert s["rms_px"] == pytest.approx(s["rms_arcsec"] / 2.0) and s["peak_arcsec"] == pytest.approx(0.5)
    assert truth_stats([], [(0, 1)], 1.0)["rms_arcsec"] is None


def test_the_oracle_corrects_fully_toward_its_target():
    o = OracleController(ra_rate=0.005, dec_rate=0.0075, target=(1.0, -1.0))
    assert o.pulses(2.0, -1.0) == [("W", 200)]
    assert o.pulses(1.0, -1.75) == [("N", 100)]
    assert o.pulses(1.001, -1.0) == []
    assert o.pulses(100.0, -1.0) == [("W", 2000)]


def test_an_unknown_property_is_answered_with_a_message_naming_what_there_is(drv):
    [msg] = _new(drv, MOUNT, "NO_SUCH_THING", "Number", {"X": 1})
    assert msg.tag == "message" and "has no property NO_SUCH_THING" in msg.get("message")
    assert "EQUATORIAL_EOD_COORD" in msg.get("message")
