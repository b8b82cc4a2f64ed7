"""The season's YAML (indisync.season.yamlio): the format round-trips, and every bad input is an error
naming the file, the path in it and what is allowed; plans are checked against the rig's wheels."""

from __future__ import annotations

import pytest
import yaml

from indisync.errors import SeasonError
from indisync.season.model import Constraints, PlanLine, Project, Target
from indisync.season.store import NodeInfo, SeasonStore
from indisync.season.yamlio import check_against_rig, dump_season, load_season

SPEC_EXAMPLE = """
projects:
  - name: spring-galaxies
    priority: 5
    targets:
      - name: M51
        ra: 202.4696
        dec: 47.1952
        pa: 0            # optional
        priority: 6      # optional
        dates: {start: 2027-03-01, end: 2027-05-31}     # optional
        constraints: {min_altitude: 35, horizon: [[0, 20], [180, 25]], moon_separation: 90, moon_width: 10, before_flip: true}
        plan:
          ota1: [{filter: Luminance, exposure: 300, count: 60}]
          ota2: [{filter: Red, exposure: 300, count: 20, binning: 1}, {filter: Green, exposure: 300, count: 20}]
      - name: M101
        ra: "14:03:12.6"
        dec: "+54:20:57"
        enabled: false
        plan:
          ota3: [{filter: null, exposure: 120.5, count: 10, binning: 2}]
  - name: nebulae
    priority: 2
    description: narrowband
    targets:
      - name: NGC 7000
        ra: 314.75
        dec: 44.5
        plan:
          ota2: [{filter: Red, exposure: 600, count: 0}]
"""

RIG = {
    "ota1": NodeInfo("ota1", "master", ("Luminance", "Red"), 0.0),
    "ota2": NodeInfo("ota2", "slave", ("Red", "Green", "Blue"), 0.0),
    "ota3": NodeInfo("ota3", "slave", (), 0.0),
}


def test_the_spec_example_loads():
    projects, targets = load_season(SPEC_EXAMPLE, "season.yaml")
    assert projects == [Project("spring-galaxies", 5), Project("nebulae", 2, "narrowband")]
    m51, m101, ngc = targets
    assert m51 == Target(
        project="spring-galaxies", name="M51", ra=202.4696, dec=47.1952, pa=0.0, priority=6,
        start_date="2027-03-01", end_date="2027-05-31",
        constraints=Constraints(min_altitude=35.0, horizon=((0.0, 20.0), (180.0, 25.0)), moon_separation=90.0,
                                moon_width=10.0, before_flip=True),
        plan=(PlanLine("ota1", "Luminance", 300.0, 60), PlanLine("ota2", "Red", 300.0, 20),
              PlanLine("ota2", "Green", 300.0, 20)))
    assert m101.ra == pytest.approx((14 + 3 / 60 + 12.6 / 3600) * 15)
    assert m101.dec == pytest.approx(54 + 20 / 60 + 57 / 3600)
    assert not m101.enabled and m101.plan == (PlanLine("ota3", None, 120.5, 10, 2),)
    assert ngc.project == "nebulae" and ngc.priority == 5 and ngc.pa is None


def test_export_then_import_gives_the_same_targets():
    projects, targets = load_season(SPEC_EXAMPLE, "season.yaml")
    text = dump_season(projects, targets)
    assert load_season(text, "export.yaml") == (projects, targets)
    assert dump_season(*load_season(text, "export.yaml")) == text  # stable


def test_round_trip_through_the_store(tmp_path):
    projects, targets = load_season(SPEC_EXAMPLE, "season.yaml")
    with SeasonStore(tmp_path / "s.db") as store:
        for p in projects:
            store.upsert_project(p)
        for t in targets:
            store.add_target(t)
        exported = dump_season(store.projects(), store.targets())
    again_projects, again_targets = load_season(exported, "export.yaml")
    assert sorted(again_projects, key=lambda p: p.name) == sorted(projects, key=lambda p: p.name)
    assert sorted(again_targets, key=lambda t: t.name) == sorted(targets, key=lambda t: t.name)


def test_a_target_whose_project_is_not_listed_is_exported_with_it():
    text = dump_season([], [Target("lonely", "T", 1.0, 2.0)])
    assert load_season(text, "x") == ([Project("lonely")], [Target("lonely", "T", 1.0, 2.0)])


def _edit(path_fn) -> str:
    data = yaml.safe_load(SPEC_EXAMPLE)
    path_fn(data)
    return yaml.safe_dump(data, sort_keys=False)


def _m51(data):
    return data["projects"][0]["targets"][0]


BAD = [
    # (how the file is broken, the path the error must name, what it must say is allowed)
    ("negative count", lambda d: _m51(d)["plan"]["ota2"][1].update(count=-5),
     "projects[0].targets[0].plan.ota2[1].count", "an integer >= 0"),
    ("fractional count", lambda d: _m51(d)["plan"]["ota1"][0].update(count=2.5),
     "projects[0].targets[0].plan.ota1[0].count", "an integer >= 0"),
    ("zero exposure", lambda d: _m51(d)["plan"]["ota1"][0].update(exposure=0),
     "projects[0].targets[0].plan.ota1[0].exposure", "seconds > 0"),
    ("RA out of range", lambda d: _m51(d).update(ra=400),
     "projects[0].targets[0].ra", "0..360"),
    ("RA hours out of range", lambda d: _m51(d).update(ra="25:00:00"),
     "projects[0].targets[0].ra", "hours"),
    ("RA not a coordinate", lambda d: _m51(d).update(ra="north"),
     "projects[0].targets[0].ra", "hours"),
    ("Dec out of range", lambda d: _m51(d).update(dec="+95:00:00"),
     "projects[0].targets[0].dec", "-90..90"),
    ("Dec a list", lambda d: _m51(d).update(dec=[1, 2]),
     "projects[0].targets[0].dec", "-90..90"),
    ("unknown target key", lambda d: _m51(d).update(colour="red"),
     "projects[0].targets[0].colour", "allowed keys: name, ra, dec"),
    ("unknown line key", lambda d: _m51(d)["plan"]["ota1"][0].update(gain=100),
     "projects[0].targets[0].plan.ota1[0].gain", "allowed keys: filter, exposure, count, binning"),
    ("unknown constraint", lambda d: _m51(d)["constraints"].update(max_airmass=2),
     "projects[0].targets[0].constraints.max_airmass", "allowed keys: min_altitude"),
    ("unknown top-level key", lambda d: d.update(targets=[]),
     "targets", "allowed keys: projects"),
    ("unsafe target name", lambda d: _m51(d).update(name="../M51"),
     "projects[0].targets[0].name", "letters, digits"),
    ("bad node name", lambda d: _m51(d)["plan"].update({"OTA 1": [{"exposure": 1, "count": 1}]}),
     "projects[0].targets[0].plan.OTA 1", "[a-z0-9-]"),
    ("bad date", lambda d: _m51(d)["dates"].update(start="March"),
     "projects[0].targets[0].dates.start", "YYYY-MM-DD"),
    ("dates reversed", lambda d: _m51(d)["dates"].update(start="2027-06-01"),
     "projects[0].targets[0].dates", "start <= end"),
    ("altitude out of range", lambda d: _m51(d)["constraints"].update(min_altitude=95),
     "projects[0].targets[0].constraints.min_altitude", "0..90"),
    ("horizon not pairs", lambda d: _m51(d)["constraints"].update(horizon=[[0, 20, 5]]),
     "projects[0].targets[0].constraints.horizon[0]", "[azimuth, altitude]"),
    ("priority out of range", lambda d: _m51(d).update(priority=11),
     "projects[0].targets[0].priority", "1..10"),
    ("a filter twice", lambda d: _m51(d)["plan"]["ota2"][1].update(filter="Red"),
     "projects[0].targets[0].plan.ota2[1].filter", "one line per node and filter"),
    ("a target twice", lambda d: d["projects"][1]["targets"][0].update(name="M51"),
     "projects[1].targets[0].name", "unique target names"),
    ("missing count", lambda d: _m51(d)["plan"]["ota1"][0].pop("count"),
     "projects[0].targets[0].plan.ota1[0].count", "missing"),
    ("plan not a mapping", lambda d: _m51(d).update(plan=[1, 2]),
     "projects[0].targets[0].plan", "a mapping of node name"),
]


@pytest.mark.parametrize("why, breaks, path, allowed", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_file_the_path_and_what_is_allowed(why, breaks, path, allowed):
    with pytest.raises(SeasonError) as err:
        load_season(_edit(breaks), "season.yaml")
    message = str(err.value)
    assert message.startswith("season.yaml: "), message
    assert f"{path}:" in message, message
    assert allowed in message, message


def test_every_range_problem_of_a_file_is_listed_at_once():
    def breaks(d):
        _m51(d)["plan"]["ota2"][1].update(count=-5)
        _m51(d).update(ra=400)
        d["projects"][1]["targets"][0]["plan"]["ota2"][0].update(exposure=-1)

    message = str(pytest.raises(SeasonError, load_season, _edit(breaks), "season.yaml").value)
    assert message.startswith("season.yaml: 3 problems")
    for path in ("projects[0].targets[0].plan.ota2[1].count", "projects[0].targets[0].ra",
                 "projects[1].targets[0].plan.ota2[0].exposure"):
        assert f"season.yaml: {path}:" in message


@pytest.mark.parametrize("text, says", [
    ("projects: [", "not valid YAML"),
    ("", "a mapping with the key projects"),
    ("- a\n- b\n", "a mapping with the key projects"),
    ("projects: {name: x}", "a list of projects"),
])
def test_not_a_season_file(text, says):
    message = str(pytest.raises(SeasonError, load_season, text, "odd.yaml").value)
    assert message.startswith("odd.yaml: ") and says in message


def test_check_against_rig_accepts_a_matching_plan():
    _, targets = load_season(SPEC_EXAMPLE, "season.yaml")
    check_against_rig(targets, RIG)  # ota3 has no wheel and its line names no filter


def test_an_unknown_node_names_the_target_and_the_known_nodes():
    target = Target("p", "M51", 1.0, 2.0, plan=(PlanLine("ota4", "Red", 60.0, 1),))
    message = str(pytest.raises(SeasonError, check_against_rig, [target], RIG).value)
    assert "target M51" in message and "'ota4'" in message and "known: ota1, ota2, ota3" in message


def test_a_filter_not_in_the_wheel_lists_what_the_wheel_has():
    target = Target("p", "M51", 1.0, 2.0, plan=(PlanLine("ota2", "Ha", 60.0, 1),))
    message = str(pytest.raises(SeasonError, check_against_rig, [target], RIG).value)
    assert "target M51" in message and "plan.ota2[0]" in message and "'Ha'" in message
    assert "Red, Green, Blue" in message


def test_a_filter_on_a_node_without_a_wheel():
    target = Target("p", "M51", 1.0, 2.0, plan=(PlanLine("ota3", "Red", 60.0, 1),))
    message = str(pytest.raises(SeasonError, check_against_rig, [target], RIG).value)
    assert "ota3 reported no filter wheel" in message and "filter: null" in message


def test_every_mismatch_is_listed():
    targets = [Target("p", "A", 1.0, 2.0, plan=(PlanLine("ota4", "Red", 60.0, 1), PlanLine("ota1", "Ha", 60.0, 1))),
               Target("p", "B", 1.0, 2.0, plan=(PlanLine("ota2", "L", 60.0, 1),))]
    message = str(pytest.raises(SeasonError, check_against_rig, targets, RIG).value)
    assert message.startswith("3 plan lines do not match the rig")
    assert "target A: plan.ota4[0]" in message and "target A: plan.ota1[0]" in message and "target B" in message


def test_no_node_known_yet_says_how_to_fix_it():
    target = Target("p", "M51", 1.0, 2.0, plan=(PlanLine("ota1", "L", 60.0, 1),))
    message = str(pytest.raises(SeasonError, check_against_rig, [target], {}).value)
    assert "no node has reported its filter wheel" in message
    assert "Start the rig once" in message and "--no-check" in message
