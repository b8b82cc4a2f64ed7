"""The devices an unattended night needs, against the real INDI 1.9.9 simulators: the mount (park,
J2000 slews, a slew that times out, a slew refused on a parked mount, a slew cancelled mid-way,
tracking, site), the weather station (ok -> alert -> ok, and what
staleness is judged from), the dome. Every result is read back through a second, raw connection
(indisync.sim.indi), not through the class under test.

One indiserver (telescope, weather) and one client serve the module; tests run in file order
(the weather driver goes away in the last one).
"""

from __future__ import annotations

import threading
import time

import pytest

from indisync.astro.coords import jnow_to_j2000, separation_arcsec
from indisync.config import IndiConfig
from indisync.devices.session import open_devices
from indisync.errors import ActionCancelled, DeviceError
from indisync.sim.indi import IndiServer, get_lights, get_numbers, get_switches, set_number, set_precipitation, set_switch
from indisync.sim.waiting import wait_until
from tests.conftest import attach_log_on_failure

pytestmark = pytest.mark.integration

MOUNT, WEATHER, DOME = "Telescope Simulator", "Weather Simulator", "Dome Simulator"
# No dome here: with the Dome Simulator beside it, the Telescope Simulator takes 15 s to park even in
# place. The dome test has its own server.
DRIVERS = ("indi_simulator_telescope", "indi_simulator_weather")


@pytest.fixture(scope="module")
def server():
    srv = IndiServer(drivers=DRIVERS)
    srv.start()
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def devices(request, server):
    cfg = IndiConfig(host=server.host, port=server.port, camera=None, filter_wheel=None, focuser=None,
                     guide_camera=None, mount=MOUNT, weather=WEATHER, move_timeout=60)
    try:
        with open_devices(cfg, need=("mount", "weather"), want=("mount", "weather")) as dev:
            yield dev
    finally:
        attach_log_on_failure(request, "indiserver", server.log_text)


def raw_position_j2000(server) -> tuple[float, float]:
    eod = get_numbers(server.host, server.port, MOUNT, "EQUATORIAL_EOD_COORD")
    return jnow_to_j2000(eod["RA"] * 15.0, eod["DEC"])


# ---- mount ------------------------------------------------------------------------------------
def test_slew_j2000_arrives_and_tracks(server, devices):
    mount = devices.mount
    mount.unpark()  # a slew never unparks on its own
    # From wherever the last test left it to a spot 20 deg away: a few seconds at the simulator's rate.
    ra0, dec0 = mount.position_j2000()
    target = ((ra0 + 20.0) % 360.0, 30.0 if dec0 > 50 else dec0 + 20.0)
    started = time.monotonic()
    mount.slew_j2000(*target, timeout=60)
    took = time.monotonic() - started
    error = separation_arcsec(*target, *raw_position_j2000(server))
    print(f"\nslew of {separation_arcsec(ra0, dec0, *target) / 3600:.1f} deg took {took:.1f} s, "
          f"landed {error:.2f} arcsec from the J2000 target")
    assert error < 5.0
    assert separation_arcsec(*target, *mount.position_j2000()) < 5.0
    assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_TRACK_STATE")["TRACK_ON"] is True
    assert mount.tracking is True
    # tracking: the J2000 position holds while the sky turns (30 s of sidereal motion would be 450")
    time.sleep(2.0)
    assert separation_arcsec(*target, *raw_position_j2000(server)) < 5.0
    assert mount.pier_side in ("east", "west")
    raw_side = get_switches(server.host, server.port, MOUNT, "TELESCOPE_PIER_SIDE")
    assert raw_side[f"PIER_{mount.pier_side.upper()}"] is True


def test_sync_j2000_moves_the_reported_position_not_the_mount(server, devices):
    mount = devices.mount
    ra0, dec0 = mount.position_j2000()
    claimed = ((ra0 + 0.5) % 360.0, dec0 - 0.3)  # what a plate solve might say
    mount.sync_j2000(*claimed)
    assert separation_arcsec(*claimed, *raw_position_j2000(server)) < 5.0
    assert separation_arcsec(*claimed, *mount.position_j2000()) < 5.0
    assert get_switches(server.host, server.port, MOUNT, "ON_COORD_SET")["TRACK"] is True  # next goto is a goto
    mount.slew_j2000(ra0, dec0, timeout=30)  # and a goto after the sync lands where asked
    assert separation_arcsec(ra0, dec0, *raw_position_j2000(server)) < 5.0


def test_tracking_off_and_on_read_back(server, devices):
    mount = devices.mount
    mount.unpark()
    mount.set_tracking(False)
    assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_TRACK_STATE")["TRACK_OFF"] is True
    assert mount.tracking is False
    mount.set_tracking(True)
    assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_TRACK_STATE")["TRACK_ON"] is True
    assert mount.tracking is True


def test_park_and_unpark_read_back(server, devices):
    mount = devices.mount
    mount.unpark()
    # Park where it stands (the simulator's park slew from the pole takes 15 s; slews are tested below).
    set_switch(server.host, server.port, MOUNT, "TELESCOPE_PARK_OPTION", {"PARK_CURRENT": True})
    mount.park(timeout=60)
    assert mount.parked is True
    assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_PARK") == {"PARK": True, "UNPARK": False}
    mount.unpark(timeout=30)
    assert mount.parked is False
    assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_PARK")["UNPARK"] is True


@pytest.mark.timeout(120)
def test_slew_j2000_on_a_parked_mount_refuses_and_leaves_it_parked(server, devices):
    """A device helper never unparks on its own: the slew is refused with the fix named, nothing is
    sent, and the mount stays parked where it is (read back raw)."""
    mount = devices.mount
    mount.unpark()
    set_switch(server.host, server.port, MOUNT, "TELESCOPE_PARK_OPTION", {"PARK_CURRENT": True})  # park in place
    mount.park(timeout=60)
    try:
        assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_PARK") == {"PARK": True, "UNPARK": False}
        where = raw_position_j2000(server)
        target = ((where[0] + 20.0) % 360.0, where[1] - 10.0 if where[1] > 0 else where[1] + 10.0)
        with pytest.raises(DeviceError, match="is parked: unpark it first"):
            mount.slew_j2000(*target, timeout=30)
        with pytest.raises(DeviceError, match="is parked: unpark it first"):
            mount.goto(6.0, 30.0)
        time.sleep(1.0)  # an unpark or a goto sent anyway would show by now
        assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_PARK") == {"PARK": True, "UNPARK": False}
        assert mount.parked is True
        assert separation_arcsec(*target, *raw_position_j2000(server)) > 3600.0
    finally:
        mount.unpark(timeout=30)


@pytest.mark.timeout(120)
def test_a_cancelled_slew_stops_the_mount_and_leaves_the_park_alone(server, devices):
    """The night leaves the state that started a slew: the goto in flight is aborted, ActionCancelled
    is raised, the mount stands still, and TELESCOPE_PARK is not touched (read back raw)."""
    mount = devices.mount
    mount.unpark()
    park_before = get_switches(server.host, server.port, MOUNT, "TELESCOPE_PARK")
    assert park_before == {"PARK": False, "UNPARK": True}
    start = raw_position_j2000(server)
    far = ((start[0] + 150.0) % 360.0, -start[1] if abs(start[1]) > 20 else start[1] - 60.0)  # tens of seconds away
    cancel = threading.Event()
    timer = threading.Timer(1.5, cancel.set)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(ActionCancelled, match="cancelled"):
            mount.slew_j2000(*far, timeout=60, cancel=cancel)
    finally:
        timer.cancel()
    took = time.monotonic() - started
    assert 1.5 <= took < 1.5 + 0.3 + 10.0, took  # the cancel, seen within 0.1 s, plus the abort's own answer
    first = raw_position_j2000(server)
    assert separation_arcsec(*start, *first) > 60.0, "the goto never started: the cancel proves nothing"
    time.sleep(1.0)
    second = raw_position_j2000(server)
    assert separation_arcsec(*first, *second) < 30.0, "the mount kept moving after the cancelled slew"
    assert separation_arcsec(*far, *second) > 3600.0
    assert devices.client.snapshot(MOUNT, "EQUATORIAL_EOD_COORD").state != "Busy"
    assert get_switches(server.host, server.port, MOUNT, "TELESCOPE_PARK") == park_before


def test_slew_timeout_aborts_the_motion_and_raises(server, devices):
    mount = devices.mount
    ra0, dec0 = mount.position_j2000()
    far = ((ra0 + 150.0) % 360.0, -dec0 if abs(dec0) > 20 else dec0 - 60.0)  # tens of seconds away
    started = time.monotonic()
    with pytest.raises(DeviceError, match="aborted"):
        mount.slew_j2000(*far, timeout=1.5)
    assert time.monotonic() - started < 1.5 + 10.0 + 1.0  # the timeout, plus the abort's own answer at most
    # Stopped: not Busy, and it stays where it is, far from the target.
    first = raw_position_j2000(server)
    time.sleep(1.0)
    second = raw_position_j2000(server)
    assert separation_arcsec(*first, *second) < 30.0, "the mount kept moving after the aborted slew"
    assert separation_arcsec(*far, *second) > 3600.0
    assert devices.client.snapshot(MOUNT, "EQUATORIAL_EOD_COORD").state != "Busy"


def test_site_write_and_read_back_east_and_west(server, devices):
    mount = devices.mount
    mount.set_site(48.14, 11.58, 520.0)
    raw = get_numbers(server.host, server.port, MOUNT, "GEOGRAPHIC_COORD")
    assert (round(raw["LAT"], 4), round(raw["LONG"], 4), round(raw["ELEV"])) == (48.14, 11.58, 520)
    assert mount.site() == pytest.approx((48.14, 11.58, 520.0), abs=1e-6)
    mount.set_site(-33.9, -70.6, 100.0)  # west: INDI keeps 0..360 east
    raw = get_numbers(server.host, server.port, MOUNT, "GEOGRAPHIC_COORD")
    assert round(raw["LONG"], 4) == 289.4
    assert mount.site() == pytest.approx((-33.9, -70.6, 100.0), abs=1e-6)


# ---- weather ----------------------------------------------------------------------------------
def test_weather_ok_alert_ok_and_last_update(server, devices):
    weather = devices.weather
    weather.set_update_period(1)
    assert get_numbers(server.host, server.port, WEATHER, "WEATHER_UPDATE")["PERIOD"] == 1
    set_precipitation(server.host, server.port, 0)
    wait_until(lambda: weather.status == "ok", 5, "status ok with no rain")
    # last_update advances with every update of the station (once a second now)
    first = weather.last_update
    wait_until(lambda: weather.last_update > first + 0.5, 5, "a fresh weather update")

    set_precipitation(server.host, server.port, 10)
    started = time.monotonic()
    wait_until(lambda: weather.status == "alert", 5, "status alert in the rain")
    print(f"\nrain -> alert seen after {time.monotonic() - started:.1f} s")
    assert get_lights(server.host, server.port, WEATHER, "WEATHER_STATUS")["WEATHER_RAIN_HOUR"] == "Alert"
    assert weather.lights["WEATHER_RAIN_HOUR"] == "Alert"
    assert weather.parameters["WEATHER_RAIN_HOUR"] == pytest.approx(10)

    set_precipitation(server.host, server.port, 0)
    wait_until(lambda: weather.status == "ok", 5, "status ok again after the rain")
    assert get_lights(server.host, server.port, WEATHER, "WEATHER_STATUS")["WEATHER_RAIN_HOUR"] == "Ok"


# ---- dome -------------------------------------------------------------------------------------
def test_dome_open_close_park_read_back(request):
    with IndiServer(drivers=("indi_simulator_dome",)) as server:
        cfg = IndiConfig(host=server.host, port=server.port, camera=None, filter_wheel=None, focuser=None,
                         guide_camera=None, mount=None, dome=DOME, move_timeout=60)
        try:
            with open_devices(cfg, need=("dome",), want=("dome",)) as devices:
                dome_sequence(server, devices.dome)
        finally:
            attach_log_on_failure(request, "indiserver", server.log_text)


def dome_sequence(server, dome):
    # Park at the dome's current azimuth: its default park slew (90 deg) takes 20 s.
    az = get_numbers(server.host, server.port, DOME, "ABS_DOME_POSITION")["DOME_ABSOLUTE_POSITION"]
    set_number(server.host, server.port, DOME, "DOME_PARK_POSITION", {"PARK_AZ": az})
    assert get_numbers(server.host, server.port, DOME, "DOME_PARK_POSITION")["PARK_AZ"] == pytest.approx(az)
    dome.unpark(timeout=60)
    dome.open_shutter(timeout=60)
    assert dome.shutter_open is True
    assert get_switches(server.host, server.port, DOME, "DOME_SHUTTER")["SHUTTER_OPEN"] is True
    dome.close_shutter(timeout=60)
    assert dome.shutter_open is False
    assert get_switches(server.host, server.port, DOME, "DOME_SHUTTER")["SHUTTER_CLOSE"] is True
    dome.park(timeout=120)
    assert dome.parked is True
    assert get_switches(server.host, server.port, DOME, "DOME_PARK")["PARK"] is True
    dome.unpark(timeout=60)
    assert get_switches(server.host, server.port, DOME, "DOME_PARK")["UNPARK"] is True


def test_weather_driver_gone_is_no_data(server, devices):
    weather = devices.weather
    assert weather.status is not None and weather.last_update is not None
    server.stop_driver("indi_simulator_weather")
    try:
        wait_until(lambda: weather.status is None, 5, "no weather status once its driver is gone")
        assert weather.last_update is None  # nothing to judge by: the night machine counts it as stale
    finally:
        server.start_driver("indi_simulator_weather")
    # It comes back disconnected and silent: still no update until someone connects it.
    time.sleep(1.0)
    assert weather.last_update is None or devices.client.snapshot(WEATHER, "WEATHER_STATUS") is None
