"""The season's slave rotation (issue 16): through the filters that still need frames, in plan
order, after the last one taken; a filter whose goal is met drops out; kept on disk."""

import itertools

import pytest

from indisync.sequence.rotation import PlanRotation, merge_order, next_through
from indisync.sequence.state_store import StateStore


def test_merge_order_keeps_the_order_seen_and_places_new_names_after_their_neighbour():
    assert merge_order([], ["R", "G", "B"]) == ["R", "G", "B"]
    assert merge_order(["R", "B"], ["R", "G", "B"]) == ["R", "G", "B"]
    assert merge_order(["R", "G"], ["L", "R"]) == ["L", "R", "G"]
    assert merge_order(["R"], [None]) == [None, "R"]


def test_next_through_skips_the_filters_that_dropped_out_and_never_starves_one():
    order = ["R", "G", "B"]
    assert next_through(order, None, ["R", "G", "B"]) == "R"
    assert next_through(order, "R", ["R", "G", "B"]) == "G"
    assert next_through(order, "G", ["R", "B"]) == "B"  # G met: B keeps its turn, not R again
    assert next_through(order, "B", ["R", "B"]) == "R"
    assert next_through(order, "B", ["G"]) == "G"
    assert next_through(order, "X", ["G", "B"]) == "G"  # a last filter no longer planned: the first
    with pytest.raises(ValueError):
        next_through(order, "R", [])


def test_a_plan_rotation_goes_on_after_a_restart_and_drops_met_filters(tmp_path):
    store = StateStore(tmp_path / "slave.state.json")
    rot = PlanRotation(store)
    taken = []
    for allowed in (["R", "G", "B"], ["R", "G", "B"], ["R", "G", "B"], ["R", "B"]):
        f = rot.peek(allowed)
        rot.advance(f, allowed)
        taken.append(f)
    assert taken == ["R", "G", "B", "R"]
    again = PlanRotation(StateStore(tmp_path / "slave.state.json"))  # a restarted slave
    assert again.last == "R" and again.taken == 4 and again.order == ["R", "G", "B"]
    assert again.peek(["R", "B"]) == "B"
    assert again.after("B", ["R", "B"]) == "R"
    assert list(itertools.islice(again.upcoming(["R", "G", "B"]), 4)) == ["G", "B", "R", "G"]


def test_the_plan_rotation_has_its_own_section_beside_the_checked_rotation(tmp_path):
    from indisync.sequence.rotation import FilterRotation

    store = StateStore(tmp_path / "s.json")
    FilterRotation(["Red", "Green"], store).advance()
    PlanRotation(store).advance("Ha", ["Ha"])
    assert store.get("rotation")["last"] == "Red" and store.get("plan_rotation")["last"] == "Ha"
