"""The night's safety on the real simulators: regression tests for the night executor's defects,
each run as a whole `indisync run` master process against its own indiserver (the INDI simulators)
and a private mosquitto (indisync.sim.rig).

Each rig is a master alone (no slave: the defects are the master's), with short real exposures, at a
site whose longitude is chosen from the clock (indisync.sim.night) so that it is local midnight now
(or noon, for the daylight restart) whatever the date and hour; the target an hour east of the
meridian at declination 45, the mount's park position 20 minutes of hour angle east of it (a park
from the target is a 2 s move; from the pole, where the Telescope Simulator starts, 45 degrees and
~13 s). What must hold, every result read back raw from the server, never through the classes under
test:

- rain as the night opens the dome and starts its first slew: the mount parked and the dome's
  shutter closed within 20 s of the Alert (the mount's travel + 5 s), the park never countermanded
  and the shutter never opened again once closing (every update of TELESCOPE_PARK and DOME_SHUTTER
  recorded: the Telescope Simulator answers an UNPARK during its park slew with "Parking/Unparking
  aborted", then says parked where it stopped, so a poll alone can miss it). The old executor's
  slew thread, still running, unparked against the park: the park failed and the dome stayed open
  until safety.park_retry (30 s), or the park went through aborted;
- a master killed mid-night and restarted where it is daylight: the mount parked within 30 s of the
  restart, never a slew nor a frame, then the night waits for dark; `indisync stop` ends it with
  exit 0. The old one resumed `imaging` as `waiting_dark` and left the mount out and tracking;
- the master's camera driver gone for 50 s (longer than the old executor spent on one frame: 3
  attempts, ~40 s): no slot of the sequence counted done without its frame on disk, the outage
  reported with a reason (an error event or a night state's reason), imaging resuming once the
  driver is back (it comes back disconnected). The old one burned the slot;
- the park that ends the night refused (the mount's driver gone): tried again until it succeeds,
  with an error event each time it fails; the mount ends parked and the master exits 0. The old
  one tried once and went on to done;
- the guide star lost (on_star_lost: pause) until the window's end (end_at): at the end the night
  parks, warms, writes its report and exits 0. The old one held the frame for ever, in imaging.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from indisync.config import IndiConfig, MqttConfig
from indisync.devices.session import open_devices
from indisync.protocol import messages
from indisync.sim.indi import PropertyWatch, set_ccd_settings, set_precipitation
from indisync.sim.night import (DOME, LATITUDE, MOUNT, WEATHER, longitude_for_local_hour, mount_parked_now,
                                move_site, prepare_dome, prepare_mount, shutter_closed, switch_vector,
                                target_east_high)
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

SEQUENCE_LENGTH = 50  # frames in the one batch of the master's sequence (repeat of its one slot)


# ---- the rig --------------------------------------------------------------------------------------
def make_rig(tmp_path, lon, ra, dec, extra=None, drivers=()) -> SimRig:
    """A master alone at time factor 1, 3 s frames; ``extra``: more top-level sections of its config."""
    night = {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False}
    return SimRig(
        slaves=0, time_factor=1.0, workdir=tmp_path / "rig", master_drivers=drivers,
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0}, "night": night,
                         **(extra or {})},
        master_section={"target": {"name": "SAFETY", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 3.0,
                                                "repeat": SEQUENCE_LENGTH}]},
                        "refocus": {"after_batch": False}},
    )


def collector(rig) -> MqttCollector:
    return MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")


def wait_for(predicate, timeout, what, rig, step=0.1):
    return wait_until(predicate, max(0.0, timeout), what, step, detail=rig.logs)


def within(predicate, timeout, failure, rig, step=0.1):
    """The first truthy value of ``predicate`` within ``timeout`` s; else fail with ``failure()`` (a
    message made at that moment, from what is read back then) and the rig's logs."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{failure()}\n{rig.logs()}")
        time.sleep(step)


def night_events(wire, since: float = 0.0) -> list[tuple[float, dict]]:
    """(arrival time, payload) of every night_state event of the master that arrived after ``since``."""
    return [(t, env.payload) for t, env in wire.envelopes("night_state", "master") if t >= since]


def night_states(wire, since: float = 0.0) -> list[str]:
    return [payload["to"] for _, payload in night_events(wire, since)]


def errors(wire, since: float = 0.0) -> list[str]:
    return [env.payload["message"] for t, env in wire.envelopes("error", "master") if t >= since]


def frames(rig, node="master") -> list[Path]:
    return sorted((rig.images / node).rglob("*.fits"))


def slots_done(rig) -> int:
    """Slots of the sequence the master counts as done, from its saved progress (the state store)."""
    path = rig.images / "master" / ".indisync" / "master.state.json"
    progress = json.loads(path.read_text())["sections"]["master"]
    return (int(progress["batch"]) - 1) * SEQUENCE_LENGTH + int(progress["frame"])


def cli(rig, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indisync.cli", *args, "--config",
                           str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=timeout)


def edit_master_config(rig, change) -> None:
    path = rig.nodes["master"].config_path
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def park_state(indi) -> str:
    """TELESCOPE_PARK as read back, or why there is none (a restarted driver's device comes back
    disconnected: only CONNECTION and the like are defined until a client connects it)."""
    park = switch_vector(indi, MOUNT, "TELESCOPE_PARK")
    if park is not None:
        return f"TELESCOPE_PARK {park}"
    return f"no TELESCOPE_PARK: the mount's CONNECTION is {switch_vector(indi, MOUNT, 'CONNECTION')}"


def master_running(rig) -> bool:
    proc = rig.nodes["master"].process
    return proc is not None and proc.poll() is None


# ---- rain as the night opens the dome ----------------------------------------------------------------
# The mount's travel to its park position (from the pole, where the Telescope Simulator starts: 45
# degrees, ~13 s) + 5 s, the shutter's close (~6 s) under way meanwhile.
RAIN_PARK_BOUND_S = 20.0
HOLD_S = 8.0  # and they stay so: no unpark, no open, this long after


def after_first(records, started) -> list:
    """The records from the first one for which ``started(record)`` holds, on."""
    for i, record in enumerate(records):
        if started(record):
            return records[i:]
    return []


@pytest.mark.timeout(240)
def test_rain_as_the_dome_opens_parks_and_closes_within_the_travel_time_and_stays_so(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    # safe_for long: the night must not resume within the test. park_retry stays at its default (30 s).
    extra = {"indi": {"weather": WEATHER, "dome": DOME},
             "safety": {"safe_for": 600.0, "stale_after": 10.0, "poll": 0.2}}
    with make_rig(tmp_path, lon, ra, dec, extra, drivers=("indi_simulator_weather", "indi_simulator_dome")) as rig, \
            contextlib.ExitStack() as stack:
        indi = rig.nodes["master"].indi
        # The mount unparked at the pole (the simulator's start, as in the night tests), the dome closed:
        # the park the rain asks for is a 13 s move, still under way when the shutter has opened (6 s).
        prepare_mount(indi, lon, dec, weather=True)
        prepare_dome(indi)
        assert shutter_closed(indi), "the rig must start with the dome closed"
        wire = collector(rig)
        stack.callback(wire.close)
        # Our own view of WEATHER_STATUS, updated by the INDI callbacks (a fresh connection per look is slow),
        # and every update of the park and the shutter (a poll would miss a park aborted and declared done).
        watch = stack.enter_context(open_devices(IndiConfig(host=indi.host, port=indi.port, weather=WEATHER),
                                                 need=("weather",), want=()))
        park_log = stack.enter_context(PropertyWatch(indi.host, indi.port, MOUNT, ("TELESCOPE_PARK",)))
        shutter_log = stack.enter_context(PropertyWatch(indi.host, indi.port, DOME, ("DOME_SHUTTER",)))
        rig.start_node("master")
        opened = wait_for(lambda: [t for t, p in night_events(wire) if p["to"] == "slewing"], 90,
                          "the night entering slewing (opening the dome)", rig, step=0.02)[0]
        set_precipitation(indi.host, indi.port, 10)
        wait_for(lambda: watch.weather.status == "alert", 5, "WEATHER_STATUS Alert", rig, step=0.01)
        alert = time.monotonic()
        print(f"\nrain alert {alert - opened:.1f} s after the night entered slewing")

        def not_safe() -> list[str]:
            problems = []
            if not mount_parked_now(indi):
                problems.append(f"mount not parked ({park_state(indi)})")
            if not shutter_closed(indi):
                problems.append(f"dome not closed (DOME_SHUTTER {switch_vector(indi, DOME, 'DOME_SHUTTER')})")
            return problems

        within(lambda: not not_safe(), RAIN_PARK_BOUND_S - (time.monotonic() - alert),
               lambda: f"{' and '.join(not_safe()) or 'parked and closed only now'} {RAIN_PARK_BOUND_S:g} s after the "
                       f"rain alert (read back); night states {night_states(wire)}", rig)
        safe_at = time.monotonic()
        print(f"parked and closed {safe_at - alert:.1f} s after the alert")
        time.sleep(HOLD_S)

        def moment(record) -> str:
            return f"+{record[0] - alert:.1f} s after the alert: {record[1]} {record[2]} {record[3]}"

        # Once the park has begun, nothing may countermand it: the Telescope Simulator answers a park
        # request (UNPARK, or PARK again) during the park slew with "Parking/Unparking aborted" (Alert),
        # and then says parked where it stopped, so only its updates show it.
        parking = after_first(park_log.updates("TELESCOPE_PARK", alert), lambda r: r[3].get("PARK") == "On")
        countered = [r for r in parking if r[2] == "Alert" or r[3].get("UNPARK") == "On"]
        assert not countered, (f"the park was countermanded after the rain alert (the slew went on?): "
                               f"{'; '.join(moment(r) for r in countered[:3])}\n{rig.logs()}")
        assert parking and parking[-1][3].get("PARK") == "On", f"the mount was unparked again: {parking[-1:]}"
        # Once closing, the shutter is never opened again; it ends closed.
        closing = after_first(shutter_log.updates("DOME_SHUTTER", alert), lambda r: r[3].get("SHUTTER_CLOSE") == "On")
        reopened = [r for r in closing if r[3].get("SHUTTER_OPEN") == "On" or r[2] == "Alert"]
        assert not reopened, f"the shutter was opened again: {'; '.join(moment(r) for r in reopened[:3])}"
        assert closing and closing[-1][2] == "Ok", f"the shutter is not closed at the end: {closing[-1:]}"
        assert mount_parked_now(indi) and shutter_closed(indi), \
            f"not parked and closed {HOLD_S:g} s after it was: {not_safe()}"
        # The night went unsafe (the master may see the Alert before our own client does) and never
        # slewed again.
        after = night_states(wire, opened)
        assert "unsafe" in after and "slewing" not in after[1:], after


# ---- a master killed mid-night, restarted in daylight -----------------------------------------------
DAYLIGHT_PARK_S = 30.0


@pytest.mark.timeout(300)
def test_a_master_killed_mid_night_and_restarted_in_daylight_parks_never_slews_and_waits_for_dark(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    with make_rig(tmp_path, lon, ra, dec) as rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec)
        wire = collector(rig)
        try:
            rig.start_node("master")
            wait_for(lambda: len(frames(rig)) >= 1, 120, "the night imaging: a master frame on disk", rig)
            time.sleep(1.0)  # into the next exposure
            rig.kill_node("master")  # kill -9: no park, no goodbye
            state_file = rig.images / "master" / ".indisync" / "master.state.json"
            saved = json.loads(state_file.read_text())["sections"]["night"]["state"]
            assert saved == "imaging", f"the killed master saved night state {saved!r}, not imaging"
            assert not mount_parked_now(indi), "the mount must be out (unparked, tracking) when the master dies"
            # Hours later: daylight, for the config and for the mount alike.
            day = longitude_for_local_hour(12.0)
            edit_master_config(rig, lambda c: c["site"].update(longitude=day))
            move_site(indi, day)
            restart = time.monotonic()
            rig.start_node("master")

            def tracking() -> str:
                return f"TELESCOPE_TRACK_STATE {switch_vector(indi, MOUNT, 'TELESCOPE_TRACK_STATE')}"

            within(lambda: mount_parked_now(indi), DAYLIGHT_PARK_S,
                   lambda: f"mount not parked {DAYLIGHT_PARK_S:g} s after the daylight restart ({park_state(indi)}, "
                           f"{tracking()}); night states after the "
                           f"restart {[(p['to'], p['reason']) for _, p in night_events(wire, restart)]}", rig)
            parked_at = time.monotonic()
            print(f"\nparked {parked_at - restart:.1f} s after the daylight restart")
            # Then it waits for dark, parked: never a slew, never a frame.
            within(lambda: night_states(wire, restart)[-1:] == ["waiting_dark"], 15,
                   lambda: f"the night does not wait for dark after the park: {night_states(wire, restart)}", rig)
            time.sleep(5.0)
            assert mount_parked_now(indi), f"the mount was unparked again in daylight: {tracking()}\n{rig.logs()}"
            after = night_states(wire, restart)
            assert not {"cooling", "slewing", "centering", "imaging"} & set(after), \
                f"the night went on in daylight after the restart: {after}"
            assert not [t for t, _ in wire.envelopes("exposure_started", "master") if t >= restart]
            result = cli(rig, "stop")
            assert result.returncode == 0, result.stderr
            assert rig.wait_node("master", 30) == 0, rig.logs()
            assert night_states(wire)[-1] == "done", night_states(wire)
            assert mount_parked_now(indi), "the mount must end parked"
        finally:
            wire.close()


# ---- the camera driver gone mid-sequence -----------------------------------------------------------
# Longer than the old executor spent on one frame before it gave the slot up: 3 attempts 5 s apart,
# each waiting indi.connect_timeout (10 s) for the vanished device: ~40 s.
OUTAGE_S = 50.0


@pytest.mark.timeout(300)
def test_the_master_camera_driver_gone_mid_sequence_burns_no_slot_and_imaging_resumes(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    with make_rig(tmp_path, lon, ra, dec) as rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec)
        wire = collector(rig)

        def counts_agree(when: str):
            # The progress is saved just after the frame is written: allow that moment to pass.
            within(lambda: slots_done(rig) == len(frames(rig)), 8,
                   lambda: f"the master counts {slots_done(rig)} slots of the sequence done but {len(frames(rig))} "
                           f"master frames are on disk ({when}); errors {errors(wire)}", rig, step=0.2)

        try:
            rig.start_node("master")
            wait_for(lambda: len(frames(rig)) >= 2, 120, "two master frames", rig)
            counts_agree("before the outage")
            gone = time.monotonic()
            indi.stop_driver("indi_simulator_ccd")
            time.sleep(OUTAGE_S)
            counts_agree(f"after {OUTAGE_S:g} s without the camera's driver")
            reports = errors(wire, gone) + [p["reason"] for _, p in night_events(wire, gone)]
            assert [r for r in reports if "CCD Simulator" in r or "camera" in r.lower()], \
                f"the camera's outage was not reported with a reason: {reports}\n{rig.logs()}"
            on_disk = len(frames(rig))
            indi.start_driver("indi_simulator_ccd")  # fresh: disconnected, default settings
            within(lambda: len(frames(rig)) >= on_disk + 2, 90,
                   lambda: f"imaging did not resume: {len(frames(rig)) - on_disk} new master frame(s) 90 s after the "
                           f"camera's driver came back (its CONNECTION: "
                           f"{switch_vector(indi, 'CCD Simulator', 'CONNECTION')}); errors {errors(wire, gone)}", rig)
            counts_agree("after the camera's driver came back")
        finally:
            wire.close()


# ---- the park that ends the night refused ----------------------------------------------------------
PARK_RETRY_S = 30.0  # safety.park_retry's default


@pytest.mark.timeout(360)
def test_a_park_refused_at_the_end_of_the_night_is_retried_until_the_mount_is_parked(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    with make_rig(tmp_path, lon, ra, dec) as rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec)
        wire = collector(rig)
        try:
            rig.start_node("master")
            wait_for(lambda: len(frames(rig)) >= 1, 120, "the night imaging: a master frame on disk", rig)
            gone = time.monotonic()
            indi.stop_driver("indi_simulator_telescope")
            result = cli(rig, "stop", "--abort")
            assert result.returncode == 0, result.stderr
            wait_for(lambda: "parking" in night_states(wire, gone), 30, "the night parking after `indisync stop`", rig)
            # The park cannot succeed while the mount's driver is gone: let it fail (and be tried again).
            wait_for(lambda: [m for m in errors(wire, gone) if "park" in m.lower()] or not master_running(rig), 60,
                     "an error event for the failed park", rig)
            time.sleep(10.0)
            assert master_running(rig), (
                f"the master ended the night (exit {rig.nodes['master'].process.returncode}) with its park failed "
                f"and the mount not parked: night states "
                f"{[(p['to'], p['reason']) for _, p in night_events(wire, gone)]}; "
                f"errors {errors(wire, gone)}\n{rig.logs()}")
            failures = [m for m in errors(wire, gone) if "park" in m.lower()]
            indi.start_driver("indi_simulator_telescope")  # fresh: disconnected, unparked at the pole
            back = time.monotonic()
            within(lambda: mount_parked_now(indi), PARK_RETRY_S + 40,
                   lambda: f"mount not parked {PARK_RETRY_S + 40:g} s after its driver came back ({park_state(indi)}); "
                           f"night states {[(p['to'], p['reason']) for _, p in night_events(wire, gone)]}; "
                           f"errors {errors(wire, gone)}", rig)
            print(f"\nparked {time.monotonic() - back:.1f} s after the driver came back; park errors {failures}")
            assert rig.wait_node("master", 60) == 0, rig.logs()
            assert night_states(wire)[-1] == "done", night_states(wire)
            assert mount_parked_now(indi), "the mount must end parked"
            assert failures, f"no error event for the park that failed: {errors(wire, gone)}"
        finally:
            wire.close()


# ---- the guide star lost until the window ends -------------------------------------------------------
def guiding_states(wire) -> list[tuple[float, str]]:
    out = []
    for t, m in list(wire.received):
        if m.topic == "indisync/master/state":
            guiding = messages.decode(m.payload).payload.get("guiding") or {}
            out.append((t, guiding.get("state")))
    return out


# The window ends this long after the master starts: the slew (~15-20 s), the guider's calibration
# (~20 s) and two frames take ~50 s here; the star is lost after the second frame, well before.
WINDOW_S = 120.0
END_PARKED_S = 15.0  # by then after the window's end the night is parking (the park itself: ~2 s)
END_DONE_S = 60.0  # and the master has warmed, written its report and exited


@pytest.mark.timeout(360)
def test_a_guide_star_lost_until_the_window_ends_parks_warms_reports_and_exits(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    # Time factor 0.1 (the guider's calibration and the frames go fast); the window's end is wall time.
    rig = SimRig(
        slaves=0, time_factor=0.1, workdir=tmp_path / "rig", guider_section={"exposure": 1.0},
        record_section={"report": True},
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0},
                         "night": {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": True}},
        master_section={"target": {"name": "SAFETY", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 3.0,
                                                "repeat": SEQUENCE_LENGTH}]},
                        "refocus": {"after_batch": False}, "dither": {"every_frames": 0}, "on_star_lost": "pause"},
    )
    with rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec)
        wire = collector(rig)
        try:
            end_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=WINDOW_S)
            edit_master_config(rig, lambda c: c["night"].update(end_at=end_at.isoformat().replace("+00:00", "Z")))
            rig.start_node("master")
            wait_for(lambda: len(frames(rig)) >= 2, WINDOW_S - 30, "the night imaging, guided: two master frames", rig)
            # The guide star gone (no star brighter than magnitude 1 drawn), from now past the window's end.
            got = set_ccd_settings(indi.host, indi.port, device="Guide Simulator", SIM_LIMITINGMAG=1.0)
            assert got["SIM_LIMITINGMAG"] == 1.0, got
            wait_for(lambda: [t for t, g in guiding_states(wire) if g == "lost"], 30,
                     "the guider reporting its star lost", rig)
            left = (end_at - datetime.now(timezone.utc)).total_seconds()
            assert left > 10, f"the rig was too slow: the star was lost only {left:.0f} s before the window's end"
            ended = time.monotonic() + left  # the window's end on our clock
            held = len(frames(rig))
            within(lambda: "parking" in night_states(wire), left + END_PARKED_S,
                   lambda: f"the night is not parking {END_PARKED_S:g} s after the window's end "
                           f"(end_at {end_at:%H:%M:%S} "
                           f"UTC), the guide star lost since: night states {night_states(wire)[-4:]}, guiding "
                           f"{[g for _, g in guiding_states(wire)][-1:]}", rig)
            code = rig.wait_node("master", max(1.0, ended + END_DONE_S - time.monotonic()))
            assert code == 0, \
                f"the master did not exit 0 within {END_DONE_S:g} s of the window's end: {code}\n{rig.logs()}"
            states = night_states(wire)
            assert states[-3:] == ["parking", "warming", "done"], states
            assert mount_parked_now(indi), "the mount must be parked at the end (read back)"
            assert len(frames(rig)) <= held + 1, "frames were taken with the guide star lost (on_star_lost: pause)"
            reports = list((rig.images / "master" / "nights").glob("report-*/report.json"))
            assert len(reports) == 1, f"no night report written: {reports}\n{rig.logs()}"
        finally:
            wire.close()
