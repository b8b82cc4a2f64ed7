"""Which calibration sets the night record asks for (calib.needs): pure over night-log entries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from indisync.calib.model import DarkSet, FlatSet
from indisync.calib.needs import (light_uses, needed_darks, needed_flats, plan_rows, read_entries, setpoint_of)
from indisync.calib.settings import FlatSetSpec

T0 = datetime(2025, 1, 10, 20, 0, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def light(node, minutes, filter="R", exposure=300.0, status="ok", start=True, **fields):
    t = T0 + timedelta(minutes=minutes)
    payload = {"exposure_id": f"e{minutes}", "status": status, "filter": filter, "duration": exposure, **fields}
    if start:
        payload["start"] = _iso(t)
    rx = t + timedelta(seconds=exposure + 5)
    return {"rx": _iso(rx), "node": node, "kind": "event", "type": "exposure_done", "ts": _iso(rx),
            "payload": payload}


def flats_done(node, minutes, filter="R", status="ok", **fields):
    t = T0 + timedelta(minutes=minutes)
    payload = {"kind": "flat", "mode": "sky", "status": status, "filter": filter, "binning": 1, **fields}
    return {"rx": _iso(t), "node": node, "kind": "event", "type": "calib_set_done", "ts": _iso(t),
            "payload": payload}


def test_light_uses_reads_old_and_new_payloads():
    entries = [
        light("ota1", 0, "R"),  # an old log: no binning, gain...: binning 1, others None
        light("ota1", 10, "Ha", binning=2, rotator_angle=90.4, gain=100, offset=10, set_temperature=-10,
              frame_type="light"),
        light("ota1", 20, "R", frame_type="flat"),  # not a light
        light("ota1", 30, "R", status="failed"),
        light("ota2", 40, "G", start=False),  # no start: rx
        {"rx": "garbage", "node": "ota1", "kind": "event", "type": "exposure_done", "payload": {"status": "ok"}},
        {"kind": "state", "node": "ota1", "type": "state", "payload": {}},
    ]
    uses = light_uses(entries)
    assert [(u.node, u.flat) for u in uses] == [
        ("ota1", FlatSet.make("R")),
        ("ota1", FlatSet("Ha", 2, 90.0, 100.0, 10.0)),
        ("ota2", FlatSet.make("G")),
    ]
    assert uses[0].at == (T0).timestamp() and uses[1].set_temperature == -10.0 and uses[0].set_temperature is None
    assert uses[2].at == (T0 + timedelta(minutes=40, seconds=305)).timestamp()
    assert uses[0].exposure == 300.0


def test_needed_flats_since_each_sets_last_flats():
    entries = [
        light("ota1", 0, "R"), light("ota1", 5, "G"), light("ota2", 6, "Ha"),
        flats_done("ota1", 60, "R"),  # R done after its lights: not needed
        flats_done("ota1", 61, "G", status="failed"),  # failed flats do not count
        flats_done("ota2", 62, "Ha", status="partial"),  # partial counts
        light("ota2", 120, "OIII"), light("ota1", 130, "L"), light("ota1", 140, "G"),
    ]
    needs = needed_flats(entries)
    assert needs == {"ota1": [FlatSet.make("G"), FlatSet.make("L")], "ota2": [FlatSet.make("OIII")]}
    # a light after the flats makes the set needed again
    needs = needed_flats(entries + [light("ota1", 200, "R")])
    assert FlatSet.make("R") in needs["ota1"]


def test_another_nodes_flats_do_not_count():
    entries = [light("ota1", 0, "R"), flats_done("ota2", 10, "R")]
    assert needed_flats(entries) == {"ota1": [FlatSet.make("R")]}


def test_flats_of_another_binning_or_angle_do_not_count():
    entries = [light("ota1", 0, "R", binning=2), light("ota1", 1, "R", rotator_angle=45.0),
               flats_done("ota1", 10, "R")]
    assert needed_flats(entries)["ota1"] == [FlatSet.make("R", 2), FlatSet.make("R", 1, 45.0)]


def test_always_sets_and_since():
    entries = [light("ota1", 0, "R"), light("ota2", 1, "G"), flats_done("ota2", 30, "L")]
    always = [FlatSetSpec(filter="L"), FlatSetSpec(filter="Ha", binning=2, node="ota2")]
    needs = needed_flats(entries, always)
    assert needs["ota1"] == [FlatSet.make("R"), FlatSet.make("L")]
    assert needs["ota2"] == [FlatSet.make("G"), FlatSet.make("L"), FlatSet.make("Ha", 2)]
    since = (T0 + timedelta(minutes=20)).timestamp()  # ota2 took L flats after this: not again
    needs = needed_flats(entries, always, since=since)
    assert needs["ota2"] == [FlatSet.make("G"), FlatSet.make("Ha", 2)]
    assert needs["ota1"] == [FlatSet.make("R"), FlatSet.make("L")]


def test_nodes_restrict_and_list_every_node():
    entries = [light("ota1", 0, "R"), light("ota2", 1, "G")]
    needs = needed_flats(entries, [FlatSetSpec(filter="L")], nodes=["ota2", "ota3"])
    assert needs == {"ota2": [FlatSet.make("G"), FlatSet.make("L")], "ota3": [FlatSet.make("L")]}
    assert needed_flats([], nodes=["ota1"]) == {"ota1": []}


def test_needed_darks():
    entries = [
        light("ota1", 0, "R", exposure=300), light("ota1", 10, "G", exposure=300),
        light("ota1", 20, "Ha", exposure=600, binning=2, gain=100),
        light("ota2", 30, "L", exposure=120),
    ]
    darks = needed_darks(entries, extra_exposures=[60.0])
    assert darks["ota1"] == [
        DarkSet.make("dark", 300), DarkSet.make("dark", 600, 2, 100),
        DarkSet.make("dark", 60), DarkSet.make("dark", 60, 2, 100),
        DarkSet.make("bias", 0), DarkSet.make("bias", 0, 2, 100),
    ]
    assert darks["ota2"] == [DarkSet.make("dark", 120), DarkSet.make("dark", 60), DarkSet.make("bias", 0)]
    assert needed_darks(entries, bias=False, nodes=["ota2"]) == {"ota2": [DarkSet.make("dark", 120)]}


def test_setpoint_of_the_last_light_that_said_one():
    entries = [light("ota1", 0, set_temperature=-10), light("ota1", 10, set_temperature=-15), light("ota1", 20),
               light("ota2", 30, set_temperature=0)]
    assert setpoint_of(entries, "ota1") == -15.0
    assert setpoint_of(entries, "ota3") is None


def test_plan_rows():
    entries = [light("ota1", 0, "R"), light("ota1", 10, "R")]
    needs = needed_flats(entries, [FlatSetSpec(filter="L")])
    rows = plan_rows(needs, light_uses(entries))
    assert rows == [
        {"node": "ota1", "set": "R bin1", "filter": "R", "binning": 1, "rotator_angle": None, "gain": None,
         "offset": None, "lights": 2, "last_light": "2025-01-10T20:10:00Z"},
        {"node": "ota1", "set": "L bin1", "filter": "L", "binning": 1, "rotator_angle": None, "gain": None,
         "offset": None, "lights": 0, "last_light": None},
    ]


def test_read_entries_by_file_date(tmp_path):
    def write(day, entries, torn=False):
        path = tmp_path / f"{day}.jsonl"
        with open(path, "w") as f:
            for e in entries:
                f.write(json.dumps(e) + "\n")
            if torn:
                f.write('{"rx": "2025-01')
    write("2024-11-01", [light("ota1", 0, "old")])
    write("2025-01-05", [light("ota1", 0, "B")], torn=True)
    write("2025-01-10", [light("ota1", 0, "R"), light("ota1", 1, "G")])
    (tmp_path / "notes.jsonl").write_text("{}\n")
    now = datetime(2025, 1, 11, 8, 0, tzinfo=timezone.utc).timestamp()
    entries = read_entries(tmp_path, 30, now)
    assert [e["payload"]["filter"] for e in entries] == ["B", "R", "G"]
    assert [e["payload"]["filter"] for e in read_entries(tmp_path, 2, now)] == ["R", "G"]
    assert read_entries(tmp_path / "missing", 30, now) == []
