"""The guard's service loop (indisync.guard.service.Guard.step) over a scripted stand-in rig and a
scripted clock, without servers: it acts once the decision says so, in a thread of its own, retries a
failed attempt every guard.retry s, raises its alarms, and its guard_state passes the schema. Its
Home Assistant entity and the `status` line are checked here too."""

from __future__ import annotations

import json
import threading

import pytest

from indisync.config import load_config
from indisync.guard.decide import DomeReading, MountReading, WeatherReading
from indisync.guard.rig import Outcome, Where
from indisync.guard.service import Guard, limits_for, rig_for
from indisync.guard.view import GuardBoard, describe
from indisync.protocol import messages, topics
from indisync.protocol.discovery import guard_discovery_messages


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class FakeRig:
    """What the service uses of GuardRig, scripted: weather, park and shutter as set by the test."""

    def __init__(self):
        self.where = Where("localhost", 7624)
        self.names = {"weather": "Weather Simulator", "mount": "Telescope Simulator", "dome": "Dome Simulator"}
        self.connected, self.problem = True, None
        self.weather_status = "ok"
        self.parked, self.closed = False, False
        self.fail_next = 0
        self.calls: list[bool] = []
        self.entered = threading.Event()

    def ensure(self):
        return None

    def close(self):
        pass

    def weather(self, now):
        return WeatherReading(self.weather_status, 1.0, "WEATHER_STATUS Alert: WEATHER_RAIN_HOUR"
                              if self.weather_status == "alert" else None)

    def mount(self):
        return MountReading(self.parked)

    def dome(self):
        return DomeReading(self.closed)

    def site(self):
        return None

    def blind(self):
        return None

    def secure(self, mount_first):
        self.calls.append(mount_first)
        if self.fail_next:
            self.fail_next -= 1
            return Outcome(parked=False, closed=True, problems=["mount: Telescope Simulator refused PARK"])
        self.parked = self.closed = True
        return Outcome(parked=True, closed=True, aborted=["CCD Simulator"])


class Alarms:
    def __init__(self):
        self.raised = []

    def start(self):
        return self

    def close(self, timeout=5.0):
        pass

    def raise_alarm(self, alarm):
        self.raised.append(alarm)
        return True


GUARDS: list[Guard] = []


@pytest.fixture(autouse=True)
def _close_guards():
    yield
    while GUARDS:
        GUARDS.pop().close()  # its registry's sweeper thread; nothing was started


def make_guard(data=None):
    cfg = load_config(data={"indi": {"weather": "Weather Simulator", "dome": "Dome Simulator"},
                            "guard": {"grace": 10, "retry": 5}, **(data or {})})
    rig, alarms, clock = FakeRig(), Alarms(), Clock()
    guard = Guard(cfg, rig=rig, alerter=alarms, clock=clock, wall=lambda: 1_765_000_000.0 + clock.t)
    GUARDS.append(guard)
    return guard, rig, alarms, clock


def settle(guard):
    if guard._attempt is not None:
        guard._attempt.join(5)
        assert not guard._attempt.is_alive()


def test_rain_past_the_grace_acts_once_then_reads_safe():
    guard, rig, alarms, clock = make_guard()
    rig.weather_status = "alert"
    assert guard.step().state == "armed"
    clock.t += 9.9
    assert not guard.step().act and not rig.calls
    clock.t += 0.2
    decision = guard.step()
    assert decision.state == "acting" and decision.started
    settle(guard)
    assert rig.calls == [False]  # both at once: no dome.requires_mount_parked
    assert [a.cause for a in alarms.raised] == ["guard_acted", "guard_secured"]
    assert alarms.raised[0].level == "critical" and "WEATHER_RAIN_HOUR" in alarms.raised[0].body
    assert "CCD Simulator" in alarms.raised[1].body
    clock.t += 1
    decision = guard.step()
    assert decision.state == "acted" and decision.rig_safe is True
    payload = guard.payload(guard.reading(), decision)
    messages.make("guard_state", guard.name, payload)  # schema-valid
    assert payload["last_action"]["parked"] is True and payload["last_action"]["closed"] is True
    assert payload["weather"] == {"safe": False, "age_s": 1.0}
    clock.t += 100
    assert guard.step().state == "acted" and rig.calls == [False]  # nothing more to do


def test_a_failed_attempt_is_retried_every_retry_seconds_and_alarms():
    guard, rig, alarms, clock = make_guard({"dome": {"requires_mount_parked": True}})
    rig.weather_status, rig.fail_next = "alert", 2
    guard.step()
    clock.t += 11
    guard.step()
    settle(guard)
    assert rig.calls == [True] and alarms.raised[-1].cause == "guard_failed"
    assert "refused PARK" in alarms.raised[-1].body
    clock.t += 4.9
    guard.step()
    settle(guard)
    assert len(rig.calls) == 1  # not before guard.retry
    clock.t += 0.2
    guard.step()
    settle(guard)
    assert len(rig.calls) == 2
    clock.t += 5.1
    guard.step()
    settle(guard)
    assert len(rig.calls) == 3 and rig.parked
    clock.t += 1
    assert guard.step().state == "acted"


def test_the_weather_clearing_while_waiting_means_no_action():
    guard, rig, alarms, clock = make_guard()
    rig.weather_status = "alert"
    guard.step()
    clock.t += 5
    rig.weather_status = "ok"
    guard.step()
    clock.t += 60
    assert guard.step().state == "armed" and not rig.calls and not alarms.raised


def test_limits_follow_the_night_and_the_guard_sections():
    assert limits_for(load_config(data={})).sun_limit_deg == -12.0
    cfg = load_config(data={"night": {"start_sun_altitude": -6, "end_sun_altitude": -15}})
    limits = limits_for(cfg)
    assert (limits.sun_limit_deg, limits.window_end_sun_deg) == (-6.0, -15.0)
    assert limits_for(load_config(data={"night": {}, "guard": {"sun_altitude": 0}})).sun_limit_deg == 0.0
    assert limits_for(load_config(data={"safety": {"stale_after": 42}})).stale_after == 42.0


def test_sky_flats_raise_the_sun_limit_to_their_upper_altitude():
    """With flats.sky the master has the mount out while the sun is between flats.sun_altitude: the
    guard must not park it for the sun alone (was: parked at -12 after guard.grace, mid-flats)."""
    cfg = load_config(data={"night": {}, "flats": {"sky": "dusk", "sun_altitude": [-3, -9]}})
    assert limits_for(cfg).sun_limit_deg == -3.0 and limits_for(cfg).window_end_sun_deg == -12.0
    assert limits_for(load_config(data={"flats": {"sky": "both"}})).sun_limit_deg == -2.0  # no night: either
    assert limits_for(load_config(data={"night": {}, "flats": {"sky": "both"},
                                        "guard": {"sun_altitude": -6}})).sun_limit_deg == -6.0  # guard's own wins
    assert limits_for(load_config(data={"night": {}, "flats": {"panel": True}})).sun_limit_deg == -12.0


def test_the_rig_reaches_the_cameras_where_they_are():
    cfg = load_config(data={"indi": {"host": "10.0.0.1", "port": 7624},
                            "guard": {"indi_host": "10.0.0.2", "indi_port": 7625}})
    rig = rig_for(cfg)
    assert rig.where == Where("10.0.0.2", 7625)
    assert rig.cameras == [("CCD Simulator", Where("10.0.0.1", 7624))]  # the node's own camera, on its server
    cfg = load_config(data={"guard": {"cameras": ["Main CCD", "CCD Simulator@10.0.0.12:7624"]}})
    assert rig_for(cfg).cameras == [("Main CCD", Where("localhost", 7624)),
                                    ("CCD Simulator", Where("10.0.0.12", 7624))]


@pytest.mark.parametrize("data,key", [
    ({"guard": {"cameras": ["@host:1"]}}, "guard.cameras[0]"),
    ({"guard": {"indi_port": 70000}}, "guard.indi_port"),
    ({"guard": {"retry": 0}}, "guard.retry"),
    ({"guard": {"master": "Ota 1"}}, "guard.master"),
    ({"guard": {"sun_altitude": 95}}, "guard.sun_altitude"),
])
def test_bad_guard_settings_are_refused_naming_the_key(data, key):
    from indisync.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(data=data)


# ---- Home Assistant and `indisync status` ------------------------------------------------------------
def render(template: str, rig_safe) -> str:
    """Home Assistant renders value_template with Jinja2 (its own sandbox); plain Jinja2 gives the same."""
    import jinja2  # a test dependency ([test] extras): Home Assistant renders these with Jinja2
    return jinja2.Environment().from_string(template).render(value_json={"payload": {"rig_safe": rig_safe}})


def test_the_rig_safe_entity_says_on_for_unsafe_as_the_safety_class_means():
    tree = topics.Topics("indisync", "homeassistant")
    [(topic, text)] = guard_discovery_messages(tree, "guard", "0.1.0")
    assert topic == "homeassistant/binary_sensor/guard/rig_safe/config"
    config = json.loads(text)
    assert config["device_class"] == "safety" and config["name"] == "Rig safe"
    assert config["state_topic"] == "indisync/guard/guard/state"
    assert config["availability_topic"] == "indisync/guard/guard/status"
    # safety: on = unsafe. rig_safe false -> "on"; true -> "off"; null -> "None" (HA: unknown). The
    # template as it is (rendered with Jinja2 3.1.6 to 'true'/'false'/'None'); below rendered again
    # where Jinja2 is installed (it is not a dependency of indisync).
    assert config["value_template"] == ("{% set s = value_json.payload.rig_safe %}"
                                        "{{ 'None' if s is none else ('true' if s else 'false') }}")
    assert render(config["value_template"], False) == config["payload_on"] == "false"
    assert render(config["value_template"], True) == config["payload_off"] == "true"
    assert render(config["value_template"], None) == "None"


def test_guard_topics_are_ignored_by_the_node_parser():
    tree = topics.Topics("indisync")
    assert tree.guard("guard", "state") == "indisync/guard/guard/state"
    assert tree.parse("indisync/guard/guard/state") is None
    assert tree.parse_guard("indisync/guard/guard/state") == topics.TopicRef("guard", "state")
    assert tree.parse_guard("indisync/guard/state") is None  # a node named guard
    with pytest.raises(ValueError):
        tree.guard("guard", "cmd")


def test_status_shows_each_guard_armed_or_acted_with_why_and_when():
    tree = topics.Topics("indisync")
    board = GuardBoard()
    payload = {"state": "acted", "since": "2026-12-05T03:12:40.000Z",
               "reason": "weather unsafe (WEATHER_STATUS Alert: WEATHER_RAIN_HOUR): parked and closed by the guard",
               "rig_safe": True, "unsafe": True, "weather": {"safe": False, "age_s": 1.0},
               "mount": {"parked": True}, "dome": {"closed": True}, "sun_alt_deg": -31.25, "master_online": False,
               "last_action": {"at": "2026-12-05T03:12:31.000Z", "why": "rain", "parked": True, "closed": True}}
    board.feed(tree, "indisync/guard/guard/status", b"online")
    board.feed(tree, "indisync/guard/guard/state", messages.make("guard_state", "guard", payload).encode())
    board.feed(tree, "indisync/guard/other/state", messages.make("guard_state", "guard", payload).encode())  # spoofed
    [row] = [r for r in board.rows() if r["guard"]]
    line = describe(row)
    assert line.startswith("guard (guard): ACTED since 03:12:40 UTC: weather unsafe")
    assert "rig safe: yes" in line and "master online: NO" in line and "last acted 03:12:31 UTC: parked, closed" in line
    from indisync.commands.status import render_table

    assert render_table([], board.rows()).splitlines()[1].startswith("guard (guard): ACTED")


def test_a_driver_message_with_control_characters_still_makes_a_valid_guard_state():
    """A weather driver's detail or an INDI error can hold a newline or a tab; the state schema refuses
    control characters, so the guard's state must be cleaned like the night's, or it is never published
    (the dashboard would show the guard silent while it acts)."""
    guard, rig, alarms, clock = make_guard()
    rig.weather = lambda now: WeatherReading("alert", 1.0, "WEATHER_STATUS Alert:\nWEATHER_RAIN_HOUR\t(driver)")
    guard.step()
    clock.t += 10.5
    decision = guard.step()
    settle(guard)
    assert decision.state == "acting"
    payload = guard.payload(guard.reading(), decision)
    env = messages.make("guard_state", guard.name, payload)  # raised ProtocolError before
    assert "\n" not in env.payload["reason"] and "WEATHER_RAIN_HOUR (driver)" in env.payload["reason"]
    assert "\n" not in env.payload["last_action"]["why"]
