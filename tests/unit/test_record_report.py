"""Issue 18 §4: the report's shutter-open share counts real time, never EXPTIME.

Under the demo's simulator time factor (0.01) a 600 s frame takes 6 s, and the report used to
divide the frames' EXPTIME by a window that was itself stretched by EXPTIME (5,798.8 % in the demo).
The real shutter interval is each frame's exposure start and image arrival on the node's clock
(exposure_done's ``shutter_opened``/``image_arrived``); EXPTIME totals are shown apart.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
from astropy.io import fits

from indisync.config import load_config
from indisync.node.imaging import FrameRequest, take_frame
from indisync.protocol import messages
from indisync.record.night import summarize

T0 = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)  # a fixed date: nothing here reads the clock


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ev(node, type_, t, **payload):
    return {"rx": _iso(t), "node": node, "kind": "event", "type": type_, "payload": payload}


def _state(node, role, t):
    return {"rx": _iso(t), "node": node, "kind": "state", "type": "state", "payload": {"role": role, "phase": "idle"}}


def accelerated_night(time_factor=0.01, exposure=600.0, frames=10, gap=1.0, real_times=True):
    """A master and a slave as in `indisync demo`: EXPTIME 600 s, really 6 s, 1 s between frames;
    exposure_done arrives 0.3 s after the image (written, then reported)."""
    entries = [_state("m", "master", T0), _state("s", "slave", T0)]
    real = exposure * time_factor
    t = T0
    for i in range(frames):
        for node, filt, offset in (("m", "Luminance", 0.0), ("s", "Red", 0.012)):
            opened = t + timedelta(seconds=offset)
            arrived = opened + timedelta(seconds=real)
            entries.append(_ev(node, "exposure_started", opened, exposure_id=str(i), filter=filt, duration=exposure,
                               start=_iso(opened)))
            done = dict(exposure_id=str(i), status="ok", filter=filt, start=_iso(opened), duration=exposure)
            if real_times:
                done.update(shutter_opened=_iso(opened), image_arrived=_iso(arrived))
            entries.append(_ev(node, "exposure_done", arrived + timedelta(seconds=0.3), **done))
        t += timedelta(seconds=real + gap)
    return entries


def test_shutter_open_is_real_time_under_a_time_factor_and_exptime_is_apart():
    data = summarize(accelerated_night())
    assert all(d["shutter_open_pct"] <= 100.0 for d in data["nodes"].values()), data["nodes"]  # was 905 %
    # window: first start to the last image's arrival = 9 x 7 s + 6 s (+12 ms: the slave's last)
    assert abs(data["window"]["seconds"] - 69.012) < 0.01
    for node in ("m", "s"):
        d = data["nodes"][node]
        assert abs(d["shutter_open_s"] - 60.0) < 0.01, d  # 10 x 6 s of real exposure
        assert abs(d["shutter_open_pct"] - 100 * 60.0 / 69.012) < 0.1, d
        assert d["shutter_estimated"] == 0
        assert d["exptime_s"] == 6000.0  # the integration the files say, nominal
    assert data["nodes"]["s"]["exptime_by_filter"] == {"Red": 6000.0}
    f = data["frames"][0]
    assert f["duration"] == 600 and f["open_source"] == "measured" and abs(f["open_s"] - 6.0) < 0.001
    json.dumps(data)


def test_at_time_factor_one_real_and_exptime_agree():
    data = summarize(accelerated_night(time_factor=1.0, exposure=300.0, frames=4, gap=100.0))
    d = data["nodes"]["m"]
    assert d["shutter_open_s"] == d["exptime_s"] == 1200.0
    assert abs(d["shutter_open_pct"] - 100 * 1200 / (3 * 400 + 300.012)) < 0.1


def test_an_old_log_without_real_times_is_estimated_and_never_over_100_pct():
    """A log written before shutter_opened/image_arrived: the image was in when exposure_done
    arrived, so a frame's interval ends there at the latest, not at DATE-OBS + EXPTIME."""
    data = summarize(accelerated_night(real_times=False))
    d = data["nodes"]["m"]
    assert d["shutter_estimated"] == 10 and d["exptime_s"] == 6000.0
    assert abs(d["shutter_open_s"] - 63.0) < 0.01, d  # 10 x (6 s + 0.3 s until reported)
    assert d["shutter_open_pct"] <= 100.0
    # an old log at time factor 1 keeps its figure: DATE-OBS + EXPTIME, reported after the image
    old = summarize(accelerated_night(time_factor=1.0, exposure=300.0, frames=4, gap=100.0, real_times=False))
    assert old["nodes"]["m"]["shutter_open_s"] == 1200.0


def test_open_time_is_a_union_cut_to_the_window():
    from indisync.record.night import open_seconds

    def frame(a, b):
        return {"open_start": _iso(T0 + timedelta(seconds=a)), "open_end": _iso(T0 + timedelta(seconds=b))}

    start, end = T0 + timedelta(seconds=10), T0 + timedelta(seconds=100)
    # before the window (cut), overlapping (counted once), after the window (cut)
    frames = [frame(0, 20), frame(30, 50), frame(40, 60), frame(90, 130)]
    assert open_seconds(frames, start, end) == 10 + 30 + 10
    assert open_seconds(frames, None, end) == 0.0


def test_report_page_shows_real_share_and_exptime_totals(tmp_path):
    from indisync.record.report import write_report

    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in accelerated_night()))
    page = write_report(log, tmp_path / "out").read_text()
    assert "shutter open (real)" in page and "EXPTIME total" in page
    assert "86.9 % (60.0 s)" in page and "1.67 h" in page  # 6000 s of EXPTIME
    assert "(est.)" not in page


class _SlowCamera:
    """A camera under a time factor: a 600 s frame is in after 0.2 s."""

    def expose(self, seconds, binning, frame_type):
        time.sleep(0.2)
        hdu = fits.PrimaryHDU(np.full((32, 32), 1000, dtype=np.uint16))
        hdu.header["DATE-OBS"] = "2026-12-03T01:02:03.456"
        hdu.header["EXPTIME"] = seconds
        return hdu


class _Devices:
    camera = _SlowCamera()
    filter_wheel = None
    focuser = None


def test_a_frame_reports_its_real_shutter_interval_on_the_nodes_clock(tmp_path):
    cfg = load_config(data={"storage": {"directory": str(tmp_path)}, "node": {"name": "slave1"}})
    before = time.time()
    record = take_frame(_Devices(), cfg, FrameRequest(duration=600, filter_name=None, frame_type="dark"))
    after = time.time()
    fields = record.event_fields()
    opened = datetime.fromisoformat(fields["shutter_opened"].replace("Z", "+00:00")).timestamp()
    arrived = datetime.fromisoformat(fields["image_arrived"].replace("Z", "+00:00")).timestamp()
    assert before - 0.001 <= opened and arrived <= after + 0.001
    assert 0.19 <= arrived - opened < 2.0 and fields["duration"] == 600
    # exposure_done carries them on the wire (its schema refuses unknown fields)
    env = messages.make("exposure_done", "slave1", {"exposure_id": "1", "status": "ok", **fields})
    assert env.payload["image_arrived"] == fields["image_arrived"]
