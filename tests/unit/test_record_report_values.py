"""Issue 20 §4: one event with a value of the wrong kind must not lose the whole report.

An HFR of "2.1" (a string) among numbers made ``statistics.median`` raise, a nested object as the
focuser temperature made ``float()`` raise, and the report was lost for the whole night. Now that
value is left out and the report says so: a line naming the event, the node and the field.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from indisync.record.night import summarize
from indisync.record.report import write_report

T0 = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)  # a fixed date: nothing here reads the clock
BAD_VALUES = ["2.1", None, {"value": 2.1}, [2.1], True, "NaN", float("nan"), float("inf")]
TEXT_FIELDS = ("filter", "start", "phase")


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ev(node, type_, t, **payload):
    return {"rx": _iso(t), "node": node, "kind": "event", "type": type_, "payload": payload}


def night() -> list[dict]:
    entries = [{"rx": _iso(T0), "node": n, "kind": "state", "type": "state",
                "payload": {"role": r, "phase": "idle", "guiding": {"rms_arcsec": 0.8, "state": "guiding"}}}
               for n, r in (("m", "master"), ("s", "slave"))]
    t = T0
    for i in range(5):
        for node, filt in (("m", "Luminance"), ("s", "Red")):
            iso = _iso(t)
            entries.append(_ev(node, "exposure_started", t, exposure_id=str(i), filter=filt, duration=300, start=iso))
            entries.append(_ev(node, "exposure_done", t + timedelta(seconds=300), exposure_id=str(i), status="ok",
                               filter=filt, start=iso, duration=300, hfr=2.0 + i / 10, stars=100, fwhm=3.1,
                               focuser_position=50000, focuser_temperature=5.0, ccd_temperature=-10.0,
                               guide_rms_arcsec=0.7, grade="accepted", grade_reason="ok",
                               shutter_opened=iso, image_arrived=_iso(t + timedelta(seconds=300))))
        t += timedelta(seconds=400)
    for k, temp in enumerate((10.0, 8.0, 6.0)):
        at = T0 + timedelta(hours=k + 1)
        entries.append(_ev("m", "autofocus_started", at, run_id=f"r{k}", filter="Luminance", position=50000))
        entries.append(_ev("m", "autofocus_point", at, run_id=f"r{k}", position=49900, hfr=3.0, stars=50))
        entries.append(_ev("m", "autofocus_done", at, run_id=f"r{k}", status="ok", position=50000 + 12 * k,
                           hfr=2.0, temperature=temp))
    entries.append(_ev("m", "dither_settled", T0 + timedelta(minutes=30), status="ok", seconds=12.5))
    entries.append(_ev("m", "center_done", T0, ok=True, attempts=2, error_arcsec=12.0))
    entries.append(_ev("s", "coalignment", T0, ota="s", offset_east_arcmin=1.0, offset_north_arcmin=-0.5,
                       rotation_diff_deg=0.2, overlap_pct=97.0))
    return entries


def _spoil(entries: list[dict], type_: str, node: str, field: str, value) -> list[dict]:
    """The night with ``field`` of the first ``type_`` event of ``node`` set to ``value``."""
    out = json.loads(json.dumps(entries))
    for e in out:
        if e["type"] == type_ and e["node"] == node:
            if field.startswith("guiding."):
                e["payload"]["guiding"][field.split(".", 1)[1]] = value
            else:
                e["payload"][field] = value
            return out
    raise AssertionError(f"no {type_} of {node}")


SPOILS = [("exposure_done", "m", "hfr"), ("exposure_done", "s", "stars"), ("exposure_done", "m", "duration"),
          ("exposure_done", "m", "focuser_temperature"), ("exposure_done", "s", "guide_rms_arcsec"),
          ("exposure_done", "s", "filter"), ("exposure_done", "m", "start"), ("exposure_started", "s", "duration"),
          ("autofocus_done", "m", "temperature"), ("autofocus_done", "m", "position"),
          ("autofocus_point", "m", "hfr"), ("dither_settled", "m", "seconds"), ("center_done", "m", "error_arcsec"),
          ("coalignment", "s", "overlap_pct"), ("state", "m", "guiding.rms_arcsec"), ("state", "s", "phase")]


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("type_, node, field", SPOILS)
def test_one_bad_value_is_left_out_and_named(type_, node, field, value):
    data = summarize(_spoil(night(), type_, node, field, value))
    json.dumps(data, allow_nan=False)
    assert data["nodes"]["m"]["frames"] == 5 and data["nodes"]["s"]["frames"] == 5
    noted = [s for s in data["skipped_values"] if (s["event"], s["node"], s["field"]) == (type_, node, field)]
    if value is None:
        assert data["skipped_values"] == []  # null is "no value", not a wrong one
    elif isinstance(value, str) and field in TEXT_FIELDS:
        assert noted == []  # text where text belongs
    else:
        assert len(noted) == 1 and noted[0]["time"] and len(data["skipped_values"]) == 1, data["skipped_values"]


def test_a_string_hfr_costs_neither_the_report_nor_the_other_frames(tmp_path):
    entries = _spoil(night(), "exposure_done", "m", "hfr", "2.1")
    data = summarize(entries)
    assert data["nodes"]["m"]["hfr_median"] == 2.25  # the other four: 2.1, 2.2, 2.3, 2.4
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    page = write_report(log, tmp_path / "out").read_text()
    assert "Values left out (1)" in page
    assert "exposure_done from m at 2026-12-03T20:05:00.000Z: <code>hfr</code> = <code>&#x27;2.1&#x27;</code>" \
           " is not a number; left out" in page
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["skipped_values"][0] == {"time": "2026-12-03T20:05:00.000Z", "node": "m", "kind": "event",
                                                "event": "exposure_done", "field": "hfr", "value": "'2.1'",
                                                "wanted": "a number"}


def test_a_payload_that_is_not_a_mapping_is_named_too(tmp_path):
    entries = night() + [{"rx": _iso(T0), "node": "s", "kind": "event", "type": "exposure_done", "payload": [1, 2]},
                         {"rx": _iso(T0), "node": "s", "kind": "event", "type": "error", "payload": "lost"},
                         {"rx": _iso(T0), "node": "m", "kind": "reply", "type": "done",
                          "payload": {"command": "autofocus", "result": "ok"}}]
    data = summarize(entries)
    assert data["nodes"]["m"]["frames"] == 5
    assert [(s["event"], s["field"]) for s in data["skipped_values"]] == [("exposure_done", "payload")]
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert "Values left out (1)" in write_report(log, tmp_path / "out").read_text()


def test_a_clean_night_lists_nothing(tmp_path):
    data = summarize(night())
    assert data["skipped_values"] == [] and data["nodes"]["m"]["hfr_median"] == 2.2
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in night()))
    assert "Values left out" not in write_report(log, tmp_path / "out").read_text()
