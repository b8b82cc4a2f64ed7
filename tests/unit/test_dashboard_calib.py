"""Issue 17: the dashboard and `indisync status` show each node's calibration — the set under way
("flats R 12/20 2.1 s 25,400 ADU"), its progress, the last frame (kept or discarded and why), the sets
done — and the night's flats states in words. No broker: messages are handed to the model as paho
would. Times are fixed."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from indisync.commands.status import node_row, render_table
from indisync.dashboard import rigview
from indisync.dashboard.model import MAX_CALIB_SETS, LiveModel
from indisync.dashboard.progress import calib_text, describe, long_work
from indisync.protocol import messages
from indisync.protocol.registry import NodeInfo
from indisync.protocol.topics import Topics
from indisync.protocol.transport import Incoming

T = Topics()
NOW = datetime(2026, 12, 5, 16, 0, tzinfo=timezone.utc)
FLATS = {"kind": "flat", "mode": "sky", "filter": "R", "exposure": 2.1, "adu": 25400.0, "kept": 12, "count": 20,
         "set": 2, "sets": 5}


def envelope(node: str, payload: dict, mtype: str = "state") -> bytes:
    return json.dumps({"v": 1, "type": mtype, "id": "a1", "from": node, "ts": messages.now_iso(),
                       "payload": payload}).encode()


def state(node: str, **fields) -> bytes:
    return envelope(node, {"role": "slave", "phase": "exposing", "version": "x", "frames": 0, **fields})


def live(*messages_) -> LiveModel:
    model = LiveModel(T, 5.0, wall=lambda: NOW)
    model.on_message(Incoming("indisync/ota2/status", b"online", False))
    for topic, payload in messages_:
        model.on_message(Incoming(topic, payload, False))
    return model


def test_calib_state_in_words():
    assert calib_text(FLATS) == "flats R 12/20 2.1 s 25,400 ADU (set 2/5)"
    assert calib_text({"kind": "flat", "mode": "panel", "filter": "Ha", "exposure": 0.25, "kept": 0,
                       "count": 20}) == "panel flats Ha 0/20 0.25 s"
    assert calib_text({"kind": "dark", "exposure": 300.0, "kept": 4, "count": 20}) == "darks 300 s 4/20"
    assert calib_text({"kind": "bias", "exposure": 0.0, "kept": 7, "count": 20}) == "bias 7/20"
    assert calib_text(None) is None and calib_text({"kind": "light"}) is None


def test_work_says_the_calibration_before_cooling_or_the_night():
    work = long_work({"phase": "exposing", "calib": FLATS, "night": {"state": "dusk_flats"},
                      "cooling": {"setpoint": -10, "temperature": -5, "reached": False}}, now=NOW)
    assert describe(work) == "calibration: flats R 12/20 2.1 s 25,400 ADU (set 2/5)"
    night = long_work({"phase": "idle", "night": {"state": "waiting_dawn"}}, now=NOW)
    assert night["waits_for"] == "waiting for dawn flats"


def test_status_shows_a_node_taking_flats():
    info = NodeInfo("ota2")
    info.status, info.state, info.alive = "online", {"role": "slave", "phase": "exposing", "calib": FLATS}, True
    row = node_row(info, 5.0, 0.0)
    assert row["calib"] == FLATS
    assert "calibration: flats R 12/20 2.1 s 25,400 ADU (set 2/5)" in render_table([row])


def test_the_card_has_the_set_under_way_its_last_frame_and_the_sets_done():
    discarded = {"kind": "flat", "mode": "sky", "filter": "R", "binning": 1, "frame": "discarded", "exposure": 0.5,
                 "adu": 40000.0, "kept": 12, "count": 20, "reason": "above the band"}
    done = {"kind": "flat", "mode": "sky", "filter": "G", "binning": 1, "status": "ok", "kept": 20, "count": 20,
            "taken": 26, "exposure_min": 1.2, "exposure_max": 3.4, "adu_min": 24100.0, "adu_max": 27800.0}
    failed = {"kind": "flat", "filter": "Ha", "binning": 1, "status": "failed", "kept": 0, "count": 20, "taken": 1,
              "reason": "needs 45 s > flats.max_exposure 30 s"}
    skipped = {"kind": "dark", "exposure": 300.0, "binning": 1, "status": "skipped",
               "reason": "a matching set 3.2 days old is kept"}
    model = live(("indisync/ota2/event", envelope("ota2", done, "calib_set_done")),
                 ("indisync/ota2/event", envelope("ota2", failed, "calib_set_done")),
                 ("indisync/ota2/event", envelope("ota2", skipped, "calib_set_done")),
                 ("indisync/ota2/event", envelope("ota2", discarded, "calib_progress")),
                 ("indisync/ota2/state", state("ota2", calib=FLATS)))
    row = model.snapshot()["nodes"][0]
    assert row["calib"]["text"] == "flats R 12/20 2.1 s 25,400 ADU (set 2/5)"
    assert row["calib"]["progress"] == 0.6
    assert row["calib"]["last_frame"] == "discarded 0.50 s 40,000 ADU: above the band"
    texts = [s["text"] for s in row["calib_sets"]]
    assert texts == ["flats G bin1 ok: 20/20 kept of 26 taken, 1.20–3.40 s, 24,100–27,800 ADU",
                     "flats Ha bin1 failed: 0/20 kept of 1 taken, needs 45 s > flats.max_exposure 30 s",
                     "dark 300 s bin1 skipped: a matching set 3.2 days old is kept"]
    assert [s["level"] for s in row["calib_sets"]] == ["ok", "bad", "ok"]
    assert row["work"]["what"] == "calibration"


def test_calibration_done_leaves_the_sets_and_no_bar():
    events = [("indisync/ota2/event", envelope("ota2", {"kind": "bias", "exposure": 0.0, "binning": 1,
                                                         "status": "taken", "kept": 20, "count": 20,
                                                         "temperature": -10.04}, "calib_set_done"))
              for _ in range(MAX_CALIB_SETS + 3)]
    row = live(*events, ("indisync/ota2/state", state("ota2", phase="idle", calib=None))).snapshot()["nodes"][0]
    assert row["calib"] is None
    assert len(row["calib_sets"]) == MAX_CALIB_SETS
    assert row["calib_sets"][0]["text"] == "bias bin1 taken: 20/20 kept, at -10.0 °C"


def test_a_bad_calib_field_blanks_only_itself():
    bad = dict(FLATS, kept="twelve")
    row = live(("indisync/ota2/state", state("ota2", calib=bad, filter="R"))).snapshot()["nodes"][0]
    assert row["calib"] is None and row["filter"] == "R"
    assert "calib" in row["problems"]


def test_the_night_line_names_the_flats_states():
    tz = ZoneInfo("UTC")
    view = rigview.night_view({"state": "dusk_flats", "since": messages.now_iso(NOW),
                               "until": "2026-12-05T16:40:00.000Z"}, NOW, tz)
    assert view["line"].startswith("sky flats at dusk") and "flats end" in view["line"]
    assert rigview.night_view({"state": "calibrating"}, NOW, tz)["label"].startswith("calibrating")


def test_the_page_draws_the_calibration_block():
    from importlib import resources

    page = resources.files("indisync.dashboard").joinpath("page.html").read_text()
    assert "calib(d)" in page and 'data-role="calib-now"' in page and 'data-role="calib-sets"' in page
