"""Issue 17: the night record and report show the calibration work — per node, flats kept/taken per
filter with the exposure and ADU range, each set's outcome and why, dark/bias sets taken, skipped,
waiting — and calibration frames never count as lights. Fixed dates: nothing here reads the clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from indisync.record.night import summarize
from indisync.record.report import write_report

T0 = datetime(2026, 12, 3, 16, 30, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ev(node, type_, t, **payload):
    return {"rx": _iso(t), "node": node, "kind": "event", "type": type_, "payload": payload}


def _state(node, t, **payload):
    return {"rx": _iso(t), "node": node, "kind": "state", "type": "state",
            "payload": {"role": "slave", "phase": "idle", **payload}}


def flat_set(node, filt, t, kept_frames, discarded=0, status="ok", count=None, reason=None, done_fields=True):
    """A sky flat set: one test frame, ``discarded`` frames out of band, then kept ones at rising exposures."""
    entries = [_ev(node, "calib_progress", t, kind="flat", mode="sky", direction="dusk", filter=filt, binning=1,
                   frame="test", exposure=0.5, adu=12000.0, kept=0, count=count or kept_frames,
                   target_adu=26214.0, band=[19660.8, 32767.5])]
    for i in range(discarded):
        t += timedelta(seconds=2)
        entries.append(_ev(node, "calib_progress", t, kind="flat", mode="sky", filter=filt, binning=1,
                           frame="discarded", exposure=0.6, adu=40000.0, kept=0, count=count or kept_frames,
                           reason="40,000 ADU above the band 19,661..32,768"))
    exposures, adus = [], []
    for i in range(kept_frames):
        t += timedelta(seconds=3)
        exposure, adu = 1.0 + 0.5 * i, 24000.0 + 1000.0 * i
        exposures.append(exposure)
        adus.append(adu)
        entries.append(_ev(node, "calib_progress", t, kind="flat", mode="sky", filter=filt, binning=1, frame="kept",
                           exposure=exposure, adu=adu, kept=i + 1, count=count or kept_frames,
                           file=f"FLAT_{filt}_1_{exposure}s_{i:04d}.fits"))
    done = dict(kind="flat", mode="sky", direction="dusk", filter=filt, binning=1, status=status, kept=kept_frames,
                taken=1 + discarded + kept_frames, count=count or kept_frames, folder="/data/calib/x/2026-12-03")
    if done_fields and kept_frames:
        done.update(exposure_min=min(exposures), exposure_max=max(exposures), adu_min=min(adus), adu_max=max(adus))
    if reason:
        done["reason"] = reason
    entries.append(_ev(node, "calib_set_done", t + timedelta(seconds=1), **done))
    return entries


def night_with_calibration() -> list[dict]:
    t = T0
    entries = [_state("m", t, role="master"), _state("s", t)]
    entries += _state_calib("s", t + timedelta(seconds=1))
    entries += flat_set("m", "R", t + timedelta(seconds=5), 3, discarded=2)
    entries += flat_set("s", "Ha", t + timedelta(seconds=5), 0, status="failed", count=3,
                        reason="needs 45 s > flats.max_exposure 30 s")
    entries += flat_set("s", "G", t + timedelta(seconds=60), 2, done_fields=False)  # the end says no ranges
    entries += flat_set("m", "R", t + timedelta(seconds=120), 2)  # a second R set (another binning? same here)
    # lights in between, and a flat that a node reported as an exposure too
    t = T0 + timedelta(hours=2)
    for node in ("m", "s"):
        entries.append(_ev(node, "exposure_done", t, exposure_id="1", status="ok", filter="L", start=_iso(t),
                           duration=300.0, frame_type="light"))
        entries.append(_ev(node, "exposure_done", t, exposure_id="f1", status="ok", filter="R", start=_iso(t),
                           duration=2.0, frame_type="flat"))
    # darks at the end: one taken, one skipped (young enough), one waiting, and a bias left unfinished
    t = T0 + timedelta(hours=12)
    for i in range(2):
        entries.append(_ev("m", "calib_progress", t + timedelta(seconds=i), kind="dark", exposure=300.0, binning=1,
                           frame="kept", kept=i + 1, count=2, temperature=-9.9 - 0.1 * i, setpoint=-10.0))
    entries.append(_ev("m", "calib_set_done", t + timedelta(seconds=3), kind="dark", exposure=300.0, binning=1,
                       status="taken", kept=2, taken=2, count=2, setpoint=-10.0, temperature=-9.95))
    entries.append(_ev("m", "calib_set_done", t + timedelta(seconds=4), kind="dark", exposure=60.0, binning=1,
                       status="skipped", reason="a matching set 3.2 days old is kept (darks.max_age_days 30)"))
    entries.append(_ev("s", "calib_set_done", t + timedelta(seconds=4), kind="dark", exposure=300.0, binning=1,
                       status="waiting", reason="nothing covers the OTA: no dome closed, no dust cap, no shutter"))
    entries.append(_ev("m", "calib_progress", t + timedelta(seconds=5), kind="bias", exposure=0.0, binning=1,
                       frame="kept", kept=1, count=2))
    return entries


def _state_calib(node, t):
    return [_state(node, t, phase="exposing", calib={"kind": "flat", "mode": "sky", "filter": "Ha", "kept": 0,
                                                      "count": 3}),
            _state(node, t + timedelta(seconds=50), phase="idle")]


def test_flats_per_filter_kept_taken_exposure_and_adu_ranges():
    cal = summarize(night_with_calibration())["calibration"]
    assert set(cal) == {"m", "s"}
    r = cal["m"]["flats_by_filter"]["R"]
    assert r["sets"] == 2 and r["kept"] == 5 and r["taken"] == (1 + 2 + 3) + (1 + 2)
    assert (r["exposure_min"], r["exposure_max"]) == (1.0, 2.0)
    assert (r["adu_min"], r["adu_max"]) == (24000.0, 26000.0)
    first = cal["m"]["flats"][0]
    assert first["discarded"] == 2 and first["discard_reason"].startswith("40,000 ADU")
    assert first["set"] == "R bin1" and first["mode"] == "sky" and first["direction"] == "dusk"


def test_a_set_end_without_ranges_takes_them_from_its_frames():
    g = summarize(night_with_calibration())["calibration"]["s"]["flats_by_filter"]["G"]
    assert (g["kept"], g["exposure_min"], g["exposure_max"], g["adu_min"], g["adu_max"]) == (2, 1.0, 1.5, 24000.0,
                                                                                               25000.0)


def test_failed_and_unfinished_sets_are_failures_with_their_reason():
    data = summarize(night_with_calibration())
    ha = data["calibration"]["s"]["flats"][0]
    assert ha["status"] == "failed" and ha["kept"] == 0 and ha["reason"] == "needs 45 s > flats.max_exposure 30 s"
    whats = {f["what"]: f["why"] for f in data["failures"]}
    assert whats["flats Ha bin1 failed"] == "needs 45 s > flats.max_exposure 30 s"
    assert "bias bias bin1 unfinished" in whats  # the log ends mid-set
    assert "waiting" not in " ".join(whats)  # a waiting dark set is no failure


def test_dark_sets_taken_skipped_waiting_with_temperature():
    cal = summarize(night_with_calibration())["calibration"]
    assert cal["m"]["dark_sets"]["taken"] == 1 and cal["m"]["dark_sets"]["skipped"] == 1
    assert cal["m"]["dark_sets"]["unfinished"] == 1
    assert cal["s"]["dark_sets"]["waiting"] == 1
    taken = cal["m"]["darks"][0]
    assert (taken["set"], taken["temperature"], taken["setpoint"], taken["kept"]) == ("dark 300 s bin1", -9.95, -10.0, 2)
    bias = cal["m"]["darks"][-1]
    assert bias["status"] == "unfinished" and bias["kept"] == 1 and bias["count"] == 2


def test_calibration_frames_are_not_lights():
    data = summarize(night_with_calibration())
    assert data["nodes"]["m"]["frames"] == 1 and data["nodes"]["m"]["frames_by_filter"] == {"L": 1}
    assert all(f["frame_type"] in (None, "light") for f in data["frames"])


def test_the_timeline_shows_a_node_taking_flats():
    lanes = summarize(night_with_calibration())["timelines"]
    assert [s["activity"] for s in lanes["s"]][:2] == ["idle", "flats"]


def test_bad_values_are_left_out_not_fatal():
    entries = night_with_calibration()
    entries.append(_ev("m", "calib_set_done", T0 + timedelta(hours=13), kind="dark", exposure="300", binning=1,
                       status="taken", kept="many"))
    entries.append(_ev("m", "calib_progress", T0 + timedelta(hours=13), kind="nonsense", frame="kept", kept=1,
                       count=1))
    data = summarize(entries)
    fields = {(s["event"], s["field"]) for s in data["skipped_values"]}
    assert {("calib_set_done", "exposure"), ("calib_set_done", "kept"), ("calib_progress", "kind")} <= fields
    assert data["calibration"]["m"]["dark_sets"]["taken"] == 2


def test_the_report_has_a_calibration_section(tmp_path):
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in night_with_calibration()))
    index = write_report(log, tmp_path / "out")
    page = index.read_text()
    assert "<h2>Calibration</h2>" in page
    assert "m: flats" in page and "1.00–2.00 s" in page and "24,000–26,000 ADU" in page
    assert "5 / 9" in page  # R: kept / taken over both sets
    assert "needs 45 s &gt; flats.max_exposure 30 s" in page
    assert "m: darks and bias (1 taken, 1 skipped, 1 unfinished)" in page
    assert "2 frame(s) at -9.9 °C (setpoint -10 °C)" in page
    data = json.loads((index.parent / "report.json").read_text())
    assert data["calibration"]["s"]["dark_sets"]["waiting"] == 1


def test_a_night_without_calibration_has_no_section(tmp_path):
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text(json.dumps(_state("m", T0, role="master")) + "\n")
    page = write_report(log, tmp_path / "out").read_text()
    assert "Calibration" not in page
