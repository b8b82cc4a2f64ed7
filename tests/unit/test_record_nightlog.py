"""Night log files: one per night (date at dusk), torn lines skipped, and the summary the report shows."""

import json
from datetime import datetime, timedelta, timezone

from indisync.record.night import fit_slope, summarize
from indisync.record.nightlog import NightLogWriter, night_of, read_night


def test_night_is_the_local_date_at_dusk():
    evening = datetime(2026, 12, 3, 21, 0).astimezone()
    morning = datetime(2026, 12, 4, 5, 0).astimezone()
    assert night_of(evening) == night_of(morning) == evening.date()
    assert night_of(datetime(2026, 12, 4, 13, 0).astimezone()) == morning.date()


def test_torn_last_line_is_skipped_and_next_line_starts_fresh(tmp_path):
    writer = NightLogWriter(tmp_path)
    when = datetime(2026, 12, 3, 22, 0).astimezone()
    path = writer.append({"n": 1}, when)
    writer.append({"n": 2}, when)
    writer.close()
    with open(path, "ab") as f:
        f.write(b'{"n": 3, "trunc')  # power cut mid-line
    assert [e["n"] for e in read_night(path).entries] == [1, 2] and read_night(path).skipped == 1
    writer = NightLogWriter(tmp_path)
    writer.append({"n": 4}, when)
    writer.close()
    result = read_night(path)
    assert [e["n"] for e in result.entries] == [1, 2, 4] and result.skipped == 1


def _ev(node, type_, t, **payload):
    return {"rx": t.isoformat().replace("+00:00", "Z"), "node": node, "kind": "event", "type": type_, "payload": payload}


def _state(node, role, t, **payload):
    return {"rx": t.isoformat().replace("+00:00", "Z"), "node": node, "kind": "state", "type": "state",
            "payload": {"role": role, **payload}}


def synthetic_night(slope=-12.0):
    t0 = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)
    entries = [_state("m", "master", t0, phase="idle"), _state("s", "slave", t0, phase="idle")]
    t = t0
    for i in range(6):
        for node, filt, offset in (("m", "Luminance", 0.0), ("s", "Red" if i % 2 else "Green", 0.012)):
            start = t + timedelta(seconds=offset)
            iso = start.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            entries.append(_ev(node, "exposure_started", start, exposure_id=str(i), filter=filt, duration=300, start=iso))
            entries.append(_ev(node, "exposure_done", start + timedelta(seconds=300), exposure_id=str(i), status="ok",
                               filter=filt, start=iso, duration=300, hfr=2.0, stars=100,
                               grade="rejected" if (node, i) == ("m", 3) else "accepted",
                               grade_reason="stars 10 < 0.6 x median 100" if (node, i) == ("m", 3) else "ok"))
        t += timedelta(seconds=400)
    # autofocus results moving with temperature: position = 50000 + slope * (T - 10)
    for k, temp in enumerate((10.0, 8.0, 6.5, 5.0)):
        at = t0 + timedelta(hours=k + 1)
        entries.append(_ev("m", "autofocus_started", at, run_id=f"r{k}", filter="Luminance", position=50000))
        entries.append(_ev("m", "autofocus_point", at, run_id=f"r{k}", position=49900, hfr=3.0, stars=50))
        entries.append(_ev("m", "autofocus_done", at, run_id=f"r{k}", status="ok",
                           position=round(50000 + slope * (temp - 10.0)), hfr=2.0, temperature=temp))
    entries.append(_ev("s", "error", t0, message="lost indiserver"))
    return entries, t0


def test_summary_counts_efficiency_skew_and_learned_slope():
    entries, t0 = synthetic_night(slope=-12.0)
    data = summarize(entries)
    m, s = data["nodes"]["m"], data["nodes"]["s"]
    assert m["frames"] == 6 and m["frames_by_filter"] == {"Luminance": 6} and m["rejected"] == 1
    assert s["frames_by_filter"] == {"Green": 3, "Red": 3}
    # window: first start to last end = 5 x 400 + 300 s (+12 ms for the slave's last end)
    assert abs(data["window"]["seconds"] - 2300.012) < 0.01
    assert abs(m["shutter_open_pct"] - 100 * 1800 / 2300.012) < 0.1
    assert data["start_skew"]["s"]["p50_ms"] == 12.0
    ft = data["focus_temperature"]["m"]["Luminance"]
    assert abs(ft["slope_steps_per_c"] - (-12.0)) < 0.5 and ft["n"] == 4
    assert any(f["why"] == "lost indiserver" for f in data["failures"])
    json.dumps(data)  # JSON-ready


def test_slope_needs_a_temperature_spread():
    assert fit_slope([(5.0, 100), (5.1, 90)]) is None
    assert abs(fit_slope([(0.0, 100), (2.0, 80), (4.0, 60)]) - (-10.0)) < 1e-9


def test_report_writes_html_json_and_pngs(tmp_path):
    from indisync.record.report import write_report

    entries, _ = synthetic_night()
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"torn')
    index = write_report(log, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["skipped_lines"] == 1 and data["nodes"]["m"]["frames"] == 6
    assert {"timeline", "quality", "focus_temperature", "frames"} <= set(data["figures"])
    for name in data["figures"].values():
        assert (tmp_path / "out" / name).stat().st_size > 1000
    page = index.read_text()
    assert "data:image/png;base64," in page and "suggested focus.temp_coefficient" in page and "<script src" not in page


def test_a_later_frame_measured_event_fills_in_hfr_and_grade():
    t = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)
    entries = [_ev("s", "exposure_done", t, exposure_id="9", status="ok", filter="Red", start="2026-12-03T20:00:00Z",
                   duration=60),
               _ev("s", "frame_measured", t, exposure_id="9", filter="Red", hfr=4.0, stars=3, grade="rejected",
                   grade_reason="stars 3 < 0.6 x median 50")]
    data = summarize(entries)
    assert data["frames"][0]["hfr"] == 4.0 and data["nodes"]["s"]["rejected"] == 1
