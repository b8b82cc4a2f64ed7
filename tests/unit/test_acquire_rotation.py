"""Turning an OTA to a position angle (indisync.acquire.rotation): the pure step (wrap-around), the
sign learned from the first move, the tolerance and the attempts, over a stand-in rotator whose
field follows it as a camera on it would (no servers)."""

from __future__ import annotations

import threading

import pytest

from indisync.acquire.rotation import learn_sign, next_angle, pa_error, rotate_to, within_tolerance
from indisync.acquire.settings import AcquireSettings
from indisync.configtypes import ConfigValueError
from indisync.errors import DeviceError, NoIndexError, SolveError


class Solved:
    def __init__(self, pa):
        self.rotation_deg, self.seconds = pa, 1.0


class Rig:
    """A rotator and the camera on it: the solved PA is sign * angle + zero (plus a fixed error)."""

    def __init__(self, angle=0.0, sign=1, zero=90.0, follows=1.0, noise=0.0, fail_solves=(), no_index=False,
                 fail_move=False):
        self.angle, self.sign, self.zero, self.follows, self.noise = angle, sign, zero, follows, noise
        self.moves, self.solves = [], 0
        self.fail_solves, self.no_index, self.fail_move = set(fail_solves), no_index, fail_move
        self.start = angle

    def move_to(self, angle, cancel=None):
        if self.fail_move:
            raise DeviceError("Rotator Simulator.ABS_ROTATOR_ANGLE did not finish within 120s")
        self.moves.append(angle)
        self.angle = angle % 360.0
        return self.angle

    def solve(self):
        self.solves += 1
        if self.no_index:
            raise NoIndexError("no astrometry.net index files in /x")
        if self.solves in self.fail_solves:
            raise SolveError("only 3 star(s) found")
        turned = (self.angle - self.start) * self.follows + self.start
        return Solved(((self.sign * turned + self.zero + self.noise) + 180.0) % 360.0 - 180.0)


SETTINGS = AcquireSettings(pa_tolerance_deg=1.0, rotate_attempts=3, settle=0.0)


# ---- the pure step ------------------------------------------------------------------------------
@pytest.mark.parametrize("solved, target, error", [
    (350.0, 10.0, 20.0), (10.0, 350.0, -20.0), (-170.0, 170.0, -20.0), (90.0, 90.0, 0.0), (0.0, 179.0, 179.0),
    (0.0, 181.0, -179.0), (359.5, 0.2, 0.7), (-90.0, 270.0, 0.0),
])
def test_the_pa_error_is_the_short_way_round(solved, target, error):
    assert pa_error(solved, target) == pytest.approx(error)


def test_the_next_angle_wraps_at_360_either_way_and_follows_the_sign():
    assert next_angle(350.0, 0.0, 30.0, 1) == pytest.approx(20.0)  # 350 + 30, past 360
    assert next_angle(10.0, 0.0, -30.0, 1) == pytest.approx(340.0)  # 10 - 30, below 0
    assert next_angle(10.0, 0.0, 30.0, -1) == pytest.approx(340.0)  # the rotator turns the field the other way
    assert next_angle(10.0, 0.0, 30.0, None) == pytest.approx(40.0)  # not learned: +1 assumed
    assert next_angle(100.0, 170.0, -170.0, 1) == pytest.approx(120.0)  # 340 deg apart = 20 deg the short way
    with pytest.raises(ValueError, match="sign"):
        next_angle(0.0, 0.0, 1.0, 2)


def test_the_sign_is_learned_from_the_first_move_across_the_wrap():
    assert learn_sign(350.0, 20.0, 80.0, 110.2, min_turn_deg=0.5) == 1  # rotator +30 through 0, field +30
    assert learn_sign(350.0, 20.0, -170.0, 160.0, min_turn_deg=0.5) == -1  # field -30 through 180
    assert learn_sign(10.0, 10.2, 5.0, 5.2, min_turn_deg=0.5) is None  # too small a move to tell
    with pytest.raises(ValueError, match="rotator turned \\+30.00 deg but the field \\+0.50 deg"):
        learn_sign(0.0, 30.0, 90.0, 90.5, min_turn_deg=0.5)  # the camera is not on this rotator
    assert within_tolerance(359.6, 0.5, 1.0) and not within_tolerance(358.0, 0.5, 1.0)


# ---- the routine --------------------------------------------------------------------------------
def test_a_rotator_turning_with_the_field_reaches_the_pa_in_one_move_across_zero():
    rig = Rig(angle=340.0, sign=1, zero=90.0)  # PA 70 now
    result = rotate_to(rig, rig.solve, 100.0, SETTINGS)
    assert result.ok and result.moves == 1 and result.sign == 1 and result.solves == 2, result
    assert rig.moves == [pytest.approx(10.0)] and abs(result.error_deg) < 1e-6 and result.reason is None
    assert [round(a.error_deg, 3) for a in result.attempts] == [30.0, 0.0]


def test_a_rotator_turning_against_the_field_is_learned_and_corrected_on_the_second_move():
    rig = Rig(angle=20.0, sign=-1, zero=0.0)  # PA -20 now; +1 assumed first: the error grows, then the sign
    result = rotate_to(rig, rig.solve, 10.0, SETTINGS)
    assert result.ok and result.moves == 2 and result.sign == -1, result
    assert [round(a.error_deg, 3) for a in result.attempts] == [30.0, 60.0, 0.0]
    assert rig.moves == [pytest.approx(50.0), pytest.approx(350.0)]


def test_a_sign_known_from_before_takes_one_move():
    rig = Rig(angle=20.0, sign=-1, zero=0.0)
    result = rotate_to(rig, rig.solve, 10.0, SETTINGS, sign=-1)
    assert result.ok and result.moves == 1 and result.sign == -1


def test_within_tolerance_at_once_nothing_moves():
    rig = Rig(angle=0.0, zero=90.0, noise=0.8)
    result = rotate_to(rig, rig.solve, 90.0, SETTINGS)
    assert result.ok and result.moves == 0 and rig.moves == [] and result.sign is None and result.solves == 1


def test_the_tolerance_is_what_counts_and_attempts_bound_the_moves():
    # the rotator overshoots: the field turns 1.4x its angle (within the follow check), so it never settles
    rig = Rig(angle=0.0, zero=0.0, follows=1.4)
    result = rotate_to(rig, rig.solve, 40.0, AcquireSettings(pa_tolerance_deg=0.5, rotate_attempts=2, settle=0.0))
    assert not result.ok and result.moves == 2 and result.solves == 3
    assert "still" in result.reason and "acquire.pa_tolerance_deg 0.5" in result.reason and "rotate_attempts 2" \
        in result.reason
    near = Rig(angle=0.0, zero=0.0, follows=1.4)
    loose = rotate_to(near, near.solve, 40.0, AcquireSettings(pa_tolerance_deg=45.0, rotate_attempts=1, settle=0.0))
    assert loose.ok and loose.moves == 0


def test_a_camera_that_does_not_follow_the_rotator_fails_naming_it():
    rig = Rig(angle=0.0, zero=0.0, follows=0.0)
    result = rotate_to(rig, rig.solve, 40.0, SETTINGS)
    assert not result.ok and result.moves == 1 and "is this camera on indi.rotator" in result.reason


def test_a_failed_solve_is_retried_without_a_move_and_no_index_ends_at_once():
    rig = Rig(angle=0.0, zero=0.0, fail_solves={1})
    result = rotate_to(rig, rig.solve, 20.0, SETTINGS)
    assert result.ok and result.attempts[0].error == "only 3 star(s) found" and result.moves == 1
    none = Rig(no_index=True)
    result = rotate_to(none, none.solve, 20.0, SETTINGS)
    assert not result.ok and result.solves == 1 and "no astrometry.net index" in result.reason
    never = Rig(fail_solves={1, 2, 3, 4, 5})
    result = rotate_to(never, never.solve, 20.0, SETTINGS)
    assert not result.ok and result.solves == 4 and result.reason.startswith("no frame solved in 4 attempt(s)")


def test_a_rotator_failure_or_a_cancel_is_a_result_with_the_reason():
    rig = Rig(angle=0.0, zero=0.0, fail_move=True)
    result = rotate_to(rig, rig.solve, 20.0, SETTINGS)
    assert not result.ok and result.reason.startswith("the rotator failed:") and "120s" in result.reason
    cancel = threading.Event()
    cancel.set()
    result = rotate_to(Rig(), Rig().solve, 20.0, SETTINGS, cancel=cancel)
    assert not result.ok and result.reason == "cancelled" and result.solves == 0


def test_reports_every_attempt_and_survives_a_broken_listener():
    seen = []

    def listener(a):
        seen.append((a.number, round(a.error_deg, 2)))
        raise RuntimeError("listener bug")

    rig = Rig(angle=0.0, zero=0.0)
    result = rotate_to(rig, rig.solve, 15.0, SETTINGS, on_attempt=listener)
    assert result.ok and seen == [(1, 15.0), (2, 0.0)]


def test_settings_defaults_and_bad_values():
    a = AcquireSettings()
    assert (a.pa_tolerance_deg, a.rotate_attempts) == (1.0, 3)
    for key, bad in (("pa_tolerance_deg", 0.0), ("pa_tolerance_deg", 90.0), ("rotate_attempts", 0),
                     ("rotate_attempts", 50)):
        with pytest.raises(ConfigValueError, match=key):
            AcquireSettings(**{key: bad}).validate()


def test_the_config_knows_the_rotator_and_the_pa_settings():
    from indisync.config import load_config

    cfg = load_config(data={"indi": {"rotator": "Rotator Simulator"},
                            "acquire": {"pa_tolerance_deg": 0.5, "rotate_attempts": 4}})
    assert cfg.indi.rotator == "Rotator Simulator" and cfg.acquire.pa_tolerance_deg == 0.5
    assert load_config(data={}).indi.rotator is None
