"""How Weather, Dome and Mount read their INDI properties, on plain snapshots (no server): the
worst light wins, a moving shutter is unknown, pier side and site longitude conventions."""

from __future__ import annotations

import pytest

from indisync.devices.client import PropertySnapshot
from indisync.devices.dome import Dome
from indisync.devices.mount import Mount
from indisync.devices.weather import Weather, age_s


class SnapshotClient:
    def __init__(self, **props):
        self.props = props
        self.updated = None

    def snapshot(self, device, name):
        return self.props.get(name)

    def last_update(self, device, prefix=""):
        return self.updated


def snap(kind, values, state="Ok"):
    return PropertySnapshot("dev", "p", kind, state, values)


@pytest.mark.parametrize("lights,expected", [
    ({"WEATHER_RAIN_HOUR": "Ok", "WEATHER_WIND_SPEED": "Ok"}, "ok"),
    ({"WEATHER_RAIN_HOUR": "Ok", "WEATHER_WIND_SPEED": "Busy"}, "busy"),
    ({"WEATHER_RAIN_HOUR": "Alert", "WEATHER_WIND_SPEED": "Busy"}, "alert"),
    ({"WEATHER_RAIN_HOUR": "Idle"}, None),  # not measured yet
])
def test_weather_status_is_the_worst_light(lights, expected):
    weather = Weather(SnapshotClient(WEATHER_STATUS=snap("light", lights)), "Weather")
    assert weather.status == expected
    assert weather.lights == lights


def test_weather_without_data():
    weather = Weather(SnapshotClient(), "Weather")
    assert weather.status is None and weather.parameters == {} and weather.last_update is None
    assert age_s(weather) is None and age_s(None) is None
    weather.client.updated = 100.0
    assert age_s(weather, now=130.0) == 30.0


@pytest.mark.parametrize("values,state,expected", [
    ({"SHUTTER_OPEN": True, "SHUTTER_CLOSE": False}, "Ok", True),
    ({"SHUTTER_OPEN": False, "SHUTTER_CLOSE": True}, "Ok", False),
    ({"SHUTTER_OPEN": True, "SHUTTER_CLOSE": False}, "Busy", None),  # still moving
    ({"SHUTTER_OPEN": False, "SHUTTER_CLOSE": True}, "Alert", None),  # jammed: unknown, never "closed"
])
def test_dome_shutter_state(values, state, expected):
    assert Dome(SnapshotClient(DOME_SHUTTER=snap("switch", values, state)), "Dome").shutter_open is expected
    assert Dome(SnapshotClient(), "Dome").shutter_open is None


def test_mount_pier_side_and_site_conventions():
    mount = Mount(SnapshotClient(TELESCOPE_PIER_SIDE=snap("switch", {"PIER_WEST": True, "PIER_EAST": False}),
                                 GEOGRAPHIC_COORD=snap("number", {"LAT": -33.9, "LONG": 289.4, "ELEV": 100.0}),
                                 TELESCOPE_PARK=snap("switch", {"PARK": True, "UNPARK": False}),
                                 TELESCOPE_TRACK_STATE=snap("switch", {"TRACK_ON": False, "TRACK_OFF": True})),
                  "Mount")
    assert mount.pier_side == "west"
    assert mount.site() == pytest.approx((-33.9, -70.6, 100.0))  # INDI 0..360 east -> -180..180
    assert mount.parked is True and mount.tracking is False
    unknown = Mount(SnapshotClient(TELESCOPE_PIER_SIDE=snap("switch", {"PIER_WEST": False, "PIER_EAST": False})), "M")
    assert unknown.pier_side is None and unknown.site() is None and unknown.parked is None
