"""Issue 16, item 6: `indisync status` and the dashboard show the master's season — its target,
since when and why, and per OTA and filter desired / accepted / rejected (pending and surplus when
not zero) — from the ``season`` state field; nothing when there is none.

No broker: states are handed to the status rows and the dashboard model as the registry and paho
would. Times are fixed (nothing here reads the clock)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from indisync.commands.status import node_row, render_table
from indisync.dashboard import seasonview
from indisync.dashboard.model import LiveModel
from indisync.protocol import messages
from indisync.protocol.registry import NodeInfo
from indisync.protocol.topics import Topics
from indisync.protocol.transport import Incoming
from indisync.season.model import Count, PlanLine, Progress, Target

T = Topics()
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 3, 12, 21, 30, tzinfo=timezone.utc)  # 22:30 in Berlin
SINCE = NOW - timedelta(minutes=49)  # 21:41 (UTC 20:41:00)
REASON = "M51: highest score 2.31 (priority 0.6, need 0.9, urgency 0.5)"


def m51_progress() -> Progress:
    target = Target("spring", "M51", 202.47, 47.2, plan=(
        PlanLine("ota1", "Luminance", 300, 60), PlanLine("ota2", "Red", 300, 20), PlanLine("ota2", "Green", 300, 20)))
    progress = Progress.for_target(target)
    progress.counts[("ota1", "Luminance")] = Count(desired=60, accepted=12, rejected=3, pending=1)
    progress.counts[("ota2", "Red")] = Count(desired=20, accepted=20, rejected=2, surplus=4)
    progress.counts[("ota2", "Green")] = Count(desired=20, accepted=7)
    return progress


def m51_season(**more) -> dict:
    season = {"target": "M51", "project": "spring", "since": messages.now_iso(SINCE), "reason": REASON,
              "complete": False, "progress": m51_progress().to_dict(),
              "candidates": [{"target": "M51", "score": 2.31, "excluded_by": None},
                             {"target": "M101", "score": 1.7, "excluded_by": None},
                             {"target": "M81", "score": None, "excluded_by": "altitude 24.1° < 30°"}], **more}
    # what the master publishes passes the state schema (the same check the dashboard makes)
    messages.STATE["season"].check(season, "season")
    return season


def status_row(name: str, role: str, **state) -> dict:
    payload = {"role": role, "phase": "imaging", "frames": 3, "version": "0", **state}
    return node_row(NodeInfo(name, status="online", state=payload, last_heartbeat=0.0, alive=True), 8.0, 1.0)


# ---- indisync status -----------------------------------------------------------------------------
def test_status_shows_the_season_target_since_why_and_per_ota_filter_counts():
    rows = [status_row("ota1", "master", season=m51_season()), status_row("ota2", "slave")]
    assert rows[0]["season"]["target"] == "M51" and rows[1]["season"] is None
    lines = render_table(rows).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("season"))
    assert lines[start] == f"season (ota1): M51 (spring) since 20:41:00 UTC: {REASON}"
    table = [line.split() for line in lines[start + 1:start + 5]]
    assert table[0] == ["OTA", "FILTER", "ACCEPTED/DESIRED", "REJECTED", "PENDING", "SURPLUS"]
    assert table[1] == ["ota1", "Luminance", "12/60", "3", "1", "-"]
    # plan order within a node (Progress.to_dict sorts by filter name: Green before Red)
    assert table[2] == ["ota2", "Green", "7/20", "0", "-", "-"]
    assert table[3] == ["ota2", "Red", "20/20", "met", "2", "-", "4"]
    json.dumps(rows)  # --json carries it as is


def test_status_without_pending_or_surplus_has_no_such_columns_and_a_gap_has_no_table():
    season = m51_season(progress={"ota1": {"Luminance": {"desired": 10, "accepted": 4, "rejected": 0, "pending": 0,
                                                          "surplus": 0}}})
    lines = seasonview.status_lines("ota1", season)
    assert lines[1].split() == ["OTA", "FILTER", "ACCEPTED/DESIRED", "REJECTED"]
    assert lines[2].split() == ["ota1", "Luminance", "4/10", "0"]
    gap = seasonview.status_lines("ota1", {"target": None, "reason": "no target observable now (next: M101 from "
                                                                        "23:40 UTC)", "progress": {}})
    assert gap == ["season (ota1): no target now: no target observable now (next: M101 from 23:40 UTC)"]


def test_status_shows_nothing_of_a_season_when_the_master_has_none():
    """No scheduler: section: the state has no season field; the table is as before."""
    rows = [status_row("ota1", "master"), status_row("ota2", "slave")]
    assert not any(line.startswith("season") for line in render_table(rows).splitlines())
    assert seasonview.status_lines("ota1", None) == [] and seasonview.status_lines("ota1", {}) == []


def test_status_lines_survive_odd_values():
    """The registry checks the whole state, but the words never trust it: odd counts read as 0."""
    odd = {"target": "M51", "since": 5, "progress": {"ota1": {"L": {"desired": "x", "accepted": -1}}, "ota2": "?"}}
    lines = seasonview.status_lines("ota1", odd)
    assert lines[0] == "season (ota1): M51: -" and lines[2].split() == ["ota1", "L", "0", "(not", "in", "plan)", "0"]


# ---- the words shared by the views ----------------------------------------------------------------
def test_count_text_and_node_totals():
    rows = seasonview.progress_rows(m51_progress().to_dict())
    by = {(r["node"], r["filter"]): r for r in rows}
    assert by[("ota1", "Luminance")]["text"] == "12/60 accepted · 3 rejected · 1 pending"
    assert by[("ota2", "Red")]["text"] == "20/20 accepted (met) · 2 rejected · 4 surplus"
    assert by[("ota2", "Green")]["text"] == "7/20 accepted · 0 rejected"
    extra = seasonview.count_row("ota3", "Ha", {"desired": 0, "accepted": 2, "rejected": 1, "pending": 0, "surplus": 0})
    assert extra["text"] == "2 accepted (not in the plan) · 1 rejected" and not extra["met"]
    groups = {g["node"]: g for g in seasonview.node_groups(rows)}
    assert groups["ota1"]["text"] == "12/60 accepted" and not groups["ota1"]["complete"]
    assert groups["ota2"]["text"] == "27/40 accepted" and not groups["ota2"]["complete"]
    done = seasonview.node_groups(seasonview.progress_rows({"ota2": {"Red": {"desired": 2, "accepted": 3}}}))
    assert done[0]["text"] == "2/2 accepted (plan met)" and done[0]["complete"]  # beyond the goal never over 100 %


# ---- the dashboard --------------------------------------------------------------------------------
def envelope(node: str, payload: dict) -> bytes:
    return json.dumps({"v": 1, "type": "state", "id": "a1", "from": node, "ts": messages.now_iso(),
                       "payload": payload}).encode()


def master_model(**state) -> LiveModel:
    model = LiveModel(T, 5.0, wall=lambda: NOW, zone="Europe/Berlin")
    model.on_message(Incoming("indisync/ota1/status", b"online", False))
    model.on_message(Incoming("indisync/ota1/state", envelope("ota1", {"role": "master", "phase": "imaging",
                                                                        "version": "x", "frames": 3, **state}), False))
    return model


def test_dashboard_season_panel_from_the_masters_state():
    snap = master_model(season=m51_season()).snapshot()
    season = snap["season"]
    assert season["line"] == "M51 (spring) · since 21:41 (49 min ago)"  # the site's clock
    assert season["reason"] == REASON and season["target"] == "M51" and season["problem"] is None
    nodes = {n["node"]: n for n in season["nodes"]}
    assert [line["filter"] for line in nodes["ota2"]["lines"]] == ["Green", "Red"]
    red = nodes["ota2"]["lines"][1]
    assert (red["desired"], red["accepted"], red["rejected"], red["pending"], red["surplus"], red["met"]) == \
        (20, 20, 2, 0, 4, True)
    assert nodes["ota1"]["lines"][0]["text"] == "12/60 accepted · 3 rejected · 1 pending"
    # the current target is not repeated among the other candidates; an excluded one says why
    assert season["candidates"] == ["M101: score 1.70", "M81: excluded — altitude 24.1° < 30°"]
    json.dumps(snap)


def test_dashboard_has_no_season_panel_without_a_season():
    assert master_model().snapshot()["season"] is None
    empty = LiveModel(T, 5.0, wall=lambda: NOW)
    assert empty.snapshot()["season"] is None  # no master at all


def test_a_malformed_season_is_blanked_said_and_never_breaks_the_page():
    bad = m51_season()
    bad["progress"]["ota1"]["Luminance"]["accepted"] = "12"  # a string: fails the schema
    snap = master_model(season=bad).snapshot()
    assert snap["season"]["nodes"] == [] and "season" in snap["season"]["problem"]
    assert "season" in snap["nodes"][0]["problems"]  # and said on the master's card, as any bad field
    assert snap["rig"]["master"] == "ota1"  # the rest of the page as usual


def test_the_panel_escapes_names_in_the_page():
    """Filter names are free text (a node's wheel); the page escapes every name it puts in HTML and
    writes the line, the reason and the candidates as text."""
    from indisync.dashboard.server import PAGE

    page = PAGE()
    start = page.index("function seasonLine")
    script = page[start:page.index("function render(snap)")]
    assert "esc(l.filter)" in script and "esc(n.node)" in script and "esc(l.text)" in script and "esc(n.text)" in script
    assert 'q("season-line").textContent' in script and 'q("season-reason").textContent' in script
    assert 'q("season-candidates").textContent' in script and "innerHTML=s." not in script
