"""Issue 17: `indisync flats [--plan] [--panel]` and `indisync darks [--covered] [--exposure S]`.

--plan reads night logs written here (no servers); --panel and darks go to the master over MQTT,
replaced here by a stand-in for ``send_to_master`` that answers as the master would, so what is
printed, the exit codes and the argument errors are tested without a broker (the end-to-end runs
are tests/integration/test_*flats*_sim.py, test_darks_sim.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from indisync.cli import main
from indisync.commands import calib
from indisync.config import load_config
from indisync.contracts import CalibrateResult, DarksResult, FlatsResult, Reply

DAY = datetime(2026, 12, 3, 22, 0, tzinfo=timezone.utc)  # a fixed night for plan(); main() uses the clock


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _light(node, t, filt, binning=1, status="ok", frame_type="light", rotator_angle=None):
    payload = {"exposure_id": "1", "status": status, "filter": filt, "start": _iso(t), "duration": 300.0,
               "binning": binning, "frame_type": frame_type, "set_temperature": -10.0}
    if rotator_angle is not None:
        payload["rotator_angle"] = rotator_angle
    return {"rx": _iso(t), "node": node, "kind": "event", "type": "exposure_done", "payload": payload}


def _flats_done(node, t, filt, status="ok"):
    return {"rx": _iso(t), "node": node, "kind": "event", "type": "calib_set_done",
            "payload": {"kind": "flat", "mode": "sky", "filter": filt, "binning": 1, "status": status, "kept": 20}}


def write_log(directory, day: datetime, entries) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{day.date().isoformat()}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def night_entries(day: datetime) -> list[dict]:
    return [
        _light("ota1", day, "L"),
        _light("ota1", day + timedelta(minutes=10), "R"),
        _light("ota1", day + timedelta(minutes=20), "R"),
        _light("ota1", day + timedelta(minutes=25), "R", status="failed"),  # not a light that counts
        _light("ota1", day + timedelta(minutes=26), "R", frame_type="flat"),  # a calibration frame
        _flats_done("ota1", day + timedelta(hours=9), "L"),  # dawn flats of L: its lights are covered
        _light("ota2", day + timedelta(minutes=5), "Ha", binning=2, rotator_angle=90.2),
    ]


def config(tmp_path, always: str = "[]"):
    data = tmp_path / "data"
    path = tmp_path / "cfg.yaml"
    path.write_text(f"storage: {{directory: {data}}}\nflats: {{always: {always}}}\n"
                    "node: {name: ota1, role: master}\n")
    return path, data / "nights"


# ---- --plan ---------------------------------------------------------------------------------------
def test_plan_lists_the_sets_the_lights_ask_for_and_why(tmp_path):
    path, nights = config(tmp_path, "[{filter: OIII, node: ota2}]")
    write_log(nights, DAY, night_entries(DAY))
    view = calib.plan(load_config(str(path)), nights, (DAY + timedelta(days=1)).timestamp())
    rows = {(r["node"], r["set"]): r for r in view["sets"]}
    assert set(rows) == {("ota1", "R bin1"), ("ota2", "Ha bin2 rot 90"), ("ota2", "OIII bin1")}
    r = rows[("ota1", "R bin1")]
    assert r["lights"] == 2 and r["last_light"] == _iso(DAY + timedelta(minutes=20))[:19] + "Z"
    assert r["why"] == "2 light(s) since the start of the logs (no flats in 30 d)" and r["last_flats"] is None
    assert rows[("ota2", "OIII bin1")]["why"] == "flats.always"
    text = calib.render_plan(view)
    assert "ota1: 1 set(s)" in text and "ota2: 2 set(s)" in text
    assert "R bin1          2 light(s) since the start of the logs" in text
    assert "last light 2026-12-03 22:20 UTC" in text


def test_plan_counts_only_the_lights_since_the_last_flats(tmp_path):
    path, nights = config(tmp_path)
    entries = night_entries(DAY)
    later = DAY + timedelta(days=1)
    entries += [_flats_done("ota1", DAY + timedelta(hours=1), "R"), _light("ota1", later, "R")]
    write_log(nights, DAY, entries)
    view = calib.plan(load_config(str(path)), nights, (later + timedelta(hours=1)).timestamp())
    r = next(r for r in view["sets"] if r["set"] == "R bin1")
    assert r["lights"] == 1 and r["last_flats"] == _iso(DAY + timedelta(hours=1))[:19] + "Z"
    assert r["why"] == "1 light(s) since its last flats"


def test_plan_command_json_and_text_from_the_configs_night_logs(tmp_path, capsys):
    path, nights = config(tmp_path)
    today = datetime.now(timezone.utc) - timedelta(hours=1)  # the lookback is counted from now
    write_log(nights, today, night_entries(today))
    assert main(["flats", "--config", str(path), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["directory"] == str(nights) and view["lookback_days"] == 30
    assert {(r["node"], r["set"]) for r in view["sets"]} == {("ota1", "R bin1"), ("ota2", "Ha bin2 rot 90")}
    assert main(["flats", "--plan", "--config", str(path)]) == 0
    assert "ota2: 1 set(s)" in capsys.readouterr().out


def test_plan_without_logs_says_where_it_looked(tmp_path, capsys):
    path, nights = config(tmp_path)
    assert main(["flats", "--config", str(path), "--dir", str(tmp_path / "nowhere")]) == 0
    out = capsys.readouterr().out
    assert f"night logs: {tmp_path / 'nowhere'}" in out and "no night logs there in the last 30 days" in out


def test_plan_with_every_set_covered_says_none_needed(tmp_path, capsys):
    path, nights = config(tmp_path)
    today = datetime.now(timezone.utc) - timedelta(hours=2)
    write_log(nights, today, [_light("ota1", today, "L"), _flats_done("ota1", today + timedelta(minutes=30), "L")])
    assert main(["flats", "--config", str(path)]) == 0
    assert "no flats needed" in capsys.readouterr().out


# ---- --panel and darks: the master's answer ---------------------------------------------------------
class Master:
    """Stands in for send_to_master: records the command, answers ``reply`` (and some progress events)."""

    def __init__(self, reply, events=()):
        self.reply, self.events, self.sent = reply, events, []

    def __call__(self, args, cfg, command, on_event=None):
        self.sent.append(command)
        for node, mtype, payload in self.events:
            if on_event is not None:
                on_event(node, mtype, payload)
        return self.reply, "ota1"


def done(status, nodes, reason=None) -> Reply:
    return Reply("calibrate", "done", result=CalibrateResult(status=status, reason=reason, nodes=nodes))


def panel_nodes() -> dict:
    trained = FlatsResult(status="partial", seconds=250.0, full_scale=65535.0, sets=(
        {"filter": "R", "binning": 1, "status": "ok", "kept": 20, "taken": 23, "discarded": 2,
         "exposures": [2.0] * 20, "adu": [26000.0 + 10 * i for i in range(20)], "brightness": 120.0,
         "trained": "search"},
        {"filter": "Ha", "binning": 1, "status": "failed", "kept": 0, "taken": 4,
         "reason": "the band 19,661..32,768 ADU is out of reach: brightness 255 gives 9,000 ADU at 30 s"},
    ))
    return {"ota1": trained.to_wire(),
            "ota2": FlatsResult(status="no_panel", reason="no indi.light_panel on this node").to_wire()}


@pytest.fixture
def cfg_path(tmp_path):
    return str(config(tmp_path)[0])


def test_panel_prints_each_nodes_sets(monkeypatch, capsys, cfg_path):
    master = Master(done("partial", panel_nodes(), "the panel served ota1; ota2 has none"), events=[
        ("ota1", "calib_progress", {"kind": "flat", "mode": "panel", "filter": "R", "frame": "kept", "exposure": 2.0,
                                    "adu": 26000.0, "kept": 1, "count": 20})])
    monkeypatch.setattr(calib, "send_to_master", master)
    assert main(["flats", "--panel", "--config", cfg_path]) == 0
    assert master.sent[0].what == "panel"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ota1: flats R 1/20 kept 2.00 s 26,000 ADU"  # a progress line while it runs
    assert out[1] == "panel flats (ota1): partial: the panel served ota1; ota2 has none"
    assert out[2] == "ota1: partial, 2 set(s): 20 kept of 27 taken in 4.2 min"
    assert out[3] == ("  R bin1   ok       20 kept, 23 taken (2 discarded), 2.00 s, 26,000–26,190 ADU, "
                      "brightness 120 (trained now)")
    assert out[4].startswith("  Ha bin1  failed   0 kept, 4 taken: the band 19,661..32,768 ADU is out of reach")
    assert out[5] == "ota2: no_panel: no indi.light_panel on this node"


def test_ranges_come_from_the_set_events_when_the_answer_leaves_the_frame_lists_out(monkeypatch, capsys, cfg_path):
    """The master's reply drops each set's per-frame lists (files, adu, exposures) to stay small; the
    calib_set_done events seen meanwhile give the exposure and ADU ranges."""
    nodes = panel_nodes()
    for s in nodes["ota1"]["sets"]:
        for key in ("files", "adu", "exposures"):
            s.pop(key, None)
    event = {"kind": "flat", "mode": "panel", "filter": "R", "binning": 1, "status": "ok", "kept": 20, "taken": 23,
             "count": 20, "exposure_min": 1.9, "exposure_max": 2.1, "adu_min": 25000.0, "adu_max": 27000.0}
    master = Master(done("partial", nodes), events=[("ota1", "calib_set_done", event)])
    monkeypatch.setattr(calib, "send_to_master", master)
    assert main(["flats", "--panel", "--config", cfg_path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ota1: flats R bin1 ok: 20/20 kept of 23 taken, 1.90–2.10 s, 25,000–27,000 ADU"
    assert "20 kept, 23 taken (2 discarded), 1.90–2.10 s, 25,000–27,000 ADU, brightness 120" in out[3]
    assert out[4].startswith("  Ha bin1  failed   0 kept, 4 taken: the band")  # no event seen: no ranges
    assert main(["flats", "--panel", "--config", cfg_path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sets_done"]["ota1"][0]["adu_max"] == 27000.0


def test_no_light_panel_anywhere_is_a_failure_with_its_reason(monkeypatch, capsys, cfg_path):
    why = ('no light panel: none of ota1, ota2 has indi.light_panel set; set it to the panel\'s INDI device '
           '(e.g. "Light Panel Simulator") on the node it covers')
    nodes = {n: FlatsResult(status="no_panel", reason="no indi.light_panel").to_wire() for n in ("ota1", "ota2")}
    monkeypatch.setattr(calib, "send_to_master", Master(done("failed", nodes, why)))
    assert main(["flats", "--panel", "--config", cfg_path]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"panel flats (ota1): failed: {why}"


def test_a_refused_request_prints_the_masters_reason_and_exits_1(monkeypatch, capsys, cfg_path):
    reason = "the night is in imaging (the mount is out): calibrate when it is parked"
    monkeypatch.setattr(calib, "send_to_master", Master(Reply("calibrate", "failed", reason=reason)))
    assert main(["darks", "--config", cfg_path]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"indisync darks: the master ota1 answered: failed: {reason}"
    assert main(["darks", "--config", cfg_path, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data == {"master": "ota1", "what": "darks", "status": "failed", "reason": reason, "nodes": None,
                    "sets_done": {}}


def darks_nodes() -> dict:
    ota1 = DarksResult(status="partial", seconds=1500.0, sets=(
        {"kind": "dark", "exposure": 300.0, "binning": 1, "status": "taken", "count": 20, "setpoint": -10.0,
         "temperature": -10.04},
        {"kind": "dark", "exposure": 60.0, "binning": 1, "status": "skipped", "age_days": 3.24},
        {"kind": "bias", "exposure": 0.0, "binning": 1, "status": "waiting",
         "reason": "the sensor is at -2.0 °C, 8.0 °C off the setpoint -10 (camera.cooling.tolerance 1)"},
    ))
    return {"ota1": ota1.to_wire(), "ota2": {"status": "failed", "reason": "ota2 did not answer (offline)"}}


def test_darks_sends_covered_and_exposures_and_prints_taken_skipped_waiting(monkeypatch, capsys, cfg_path):
    master = Master(done("partial", darks_nodes()))
    monkeypatch.setattr(calib, "send_to_master", master)
    assert main(["darks", "--config", cfg_path, "--covered", "--exposure", "60", "--exposure", "120.5"]) == 0
    command = master.sent[0]
    assert (command.what, command.covered, command.exposures) == ("darks", True, (60.0, 120.5))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "darks (ota1): partial"
    assert out[1] == "ota1: partial, 1 taken, 1 skipped, 1 waiting in 25.0 min"
    assert out[2] == "  dark 300 s bin1  taken    20 frame(s) at -10.0 °C (setpoint -10 °C)"
    assert out[3] == "  dark 60 s bin1   skipped  a matching set 3.2 days old is kept"
    assert out[4].startswith("  bias bin1        waiting  the sensor is at -2.0 °C")
    assert out[5] == "ota2: failed: ota2 did not answer (offline)"


def test_darks_json_carries_every_nodes_answer(monkeypatch, capsys, cfg_path):
    monkeypatch.setattr(calib, "send_to_master", Master(done("partial", darks_nodes())))
    assert main(["darks", "--config", cfg_path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "partial" and data["nodes"]["ota1"]["sets"][1]["age_days"] == 3.24
    assert data["nodes"]["ota2"]["reason"] == "ota2 did not answer (offline)"


def test_a_node_answer_of_another_shape_is_shown_not_fatal():
    text, code = calib.render_outcome(done("ok", {"ota3": {"what": "odd"}, "ota4": {"status": "lost"}}), "ota1",
                                      "darks")
    assert code == 0 and "ota3: {'what': 'odd'}" in text and "ota4: lost" in text


# ---- argument errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["darks", "--exposure", "0"],
    ["darks", "--exposure", "-5"],
    ["darks", "--exposure", "abc"],
    ["darks", "--exposure", "nan"],
    ["darks", "--exposure", "40000"],
    ["flats", "--plan", "--panel"],
])
def test_bad_arguments_exit_2_with_the_reason(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--exposure" in err or "not allowed with argument" in err


def test_dir_with_panel_is_refused(monkeypatch, capsys, cfg_path):
    monkeypatch.setattr(calib, "send_to_master", Master(done("ok", {})))
    assert main(["flats", "--panel", "--dir", "/tmp", "--config", cfg_path]) == 2
    assert "--dir is for --plan" in capsys.readouterr().err


def test_progress_lines_for_frames_and_sets():
    assert calib.progress_line("ota2", "calib_progress", {
        "kind": "flat", "filter": "G", "frame": "discarded", "exposure": 0.5, "adu": 40000.0, "kept": 3, "count": 20,
        "reason": "above the band"}) == "ota2: flats G 3/20 discarded 0.50 s 40,000 ADU: above the band"
    assert calib.progress_line("ota2", "calib_progress", {
        "kind": "dark", "exposure": 300.0, "frame": "kept", "kept": 4, "count": 20}) == "ota2: darks 4/20 kept 300.00 s"
    assert calib.progress_line("ota2", "calib_set_done", {
        "kind": "bias", "exposure": 0.0, "binning": 1, "status": "skipped",
        "reason": "a set 2.0 days old is kept"}) == "ota2: bias bin1 skipped: a set 2.0 days old is kept"
