"""The independent guard (`indisync guard`) on the real simulators: an indiserver with the Telescope,
Dome, Weather and CCD Simulators, a private mosquitto, a real `indisync run` master and a real
`indisync guard` process (indisync.sim.rig), at a site where it is local midnight now (so the sun
never decides, whatever the date and hour; indisync.sim.night).

- a master killed outright (kill -9) with the mount out and the dome open, then rain (read back) and
  an exposure left running on its camera: the guard aborts the exposure, parks the mount and closes
  the dome within guard.grace + 15 s (read back raw from the server), publishes its alarm on MQTT,
  and apprise delivers it to a real HTTP endpoint of the test (``json://127.0.0.1:PORT/``);
- a live master doing its job through a whole rain shower: it parks and closes within the grace
  itself and resumes after it; the guard does nothing (never acting, no alarm, never a PARK or a
  close of its own), while it sees the master online.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import pytest

from indisync.sim.guard_rig import (CAMERA, GUARD, Inbox, dome_open, exposure_state, guard_alarms, guard_states,
                                    imaging_under_a_guard, logs, make_rig, not_safe)
from indisync.sim.indi import set_number, set_precipitation
from indisync.sim.night import longitude_for_local_hour, mount_parked_now, target_east_high
from indisync.sim.waiting import wait_until

pytestmark = pytest.mark.integration

# The rig, the guard process, the json:// endpoint and the reads: indisync.sim.guard_rig (shared with
# benchmarks/guard.py).


# ---- (a) the master killed, then rain: the guard parks and closes ----------------------------------------
GRACE_A = 10.0


@pytest.mark.timeout(180)
def test_a_master_killed_then_rain_the_guard_parks_closes_alarms_and_a_notification_arrives(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    inbox = Inbox()
    with contextlib.ExitStack() as stack:
        stack.callback(inbox.close)
        rig = stack.enter_context(make_rig(tmp_path, lon, ra, dec, GRACE_A, urls=[f"json://127.0.0.1:{inbox.port}/"]))
        indi, wire, watch, guard = imaging_under_a_guard(stack, rig, lon, dec)
        rig.kill_node("master")  # kill -9: no park, no close, no goodbye
        assert not mount_parked_now(indi) and dome_open(indi), "the rig must be out when the master dies"
        set_precipitation(indi.host, indi.port, 10)
        wait_until(lambda: watch.weather.status == "alert", 5, "WEATHER_STATUS Alert", 0.01)
        alert = time.monotonic()
        # an exposure under way on the master's camera (as a hung master would leave one): the guard aborts it
        set_number(indi.host, indi.port, CAMERA, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 120})
        wait_until(lambda: exposure_state(indi) == "Busy", 5, "the CCD Simulator exposing (read back)", 0.1)
        bound = GRACE_A + 15.0
        wait_until(lambda: not not_safe(indi), bound, f"the mount parked and the dome closed within {bound:g} s "
                   "of the rain alert (read back)", 0.2, detail=lambda: f"{not_safe(indi)}\n{logs(rig, guard)}")
        safe_after = time.monotonic() - alert
        print(f"\nparked and closed by the guard {safe_after:.1f} s after the rain alert (grace {GRACE_A:g} s)")
        assert safe_after >= GRACE_A - 1.0, f"the guard acted before its grace: {safe_after:.1f} s"
        wait_until(lambda: exposure_state(indi) != "Busy", 5, "the exposure aborted (CCD_EXPOSURE not Busy)", 0.1,
                   detail=lambda: logs(rig, guard))
        assert f"aborted the exposure of {CAMERA}" in guard.log_text(), guard.log_text()[-3000:]
        # its alarm on MQTT, and its state
        wait_until(lambda: [a for a in guard_alarms(wire) if a["cause"] == "guard_acted"], 10,
                   "the guard's alarm on MQTT", 0.2, detail=lambda: logs(rig, guard))
        acted = [a for a in guard_alarms(wire) if a["cause"] == "guard_acted"][0]
        assert acted["level"] == "critical" and "WEATHER_STATUS Alert" in acted["body"], acted
        wait_until(lambda: (guard_states(wire) or [{}])[-1].get("state") == "acted", 10,
                   "the guard's state acted", 0.2, detail=lambda: f"{guard_states(wire)[-3:]}\n{logs(rig, guard)}")
        last = guard_states(wire)[-1]
        assert last["rig_safe"] is True and last["unsafe"] is True and last["master_online"] is False, last
        assert last["last_action"]["parked"] is True and last["last_action"]["closed"] is True, last
        # apprise delivered it to our endpoint
        with inbox.cond:
            inbox.cond.wait_for(lambda: any("guard acting" in b.get("title", "") for b in inbox.bodies), 20)
            titles = [b.get("title", "") for b in inbox.bodies]
        assert any("guard acting" in t for t in titles), f"no notification arrived: {inbox.bodies}"
        # `indisync status` shows it
        out = subprocess.run([sys.executable, "-m", "indisync.cli", "status", "--once", "--config",
                              str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=30)
        assert f"guard ({GUARD}): ACTED" in out.stdout, out.stdout + out.stderr
        # it never opens anything again, and stops cleanly when asked
        time.sleep(3.0)
        assert not not_safe(indi), not_safe(indi)
        guard.send_signal(signal.SIGTERM)
        assert guard.wait(20) == 0, guard.log_text()[-3000:]
        wait_until(lambda: [m for m in wire.messages(f"indisync/guard/{GUARD}/status") if m.payload == b"offline"],
                   5, "the guard's offline status", 0.1)


# ---- (b) a live master through a whole shower: the guard does nothing --------------------------------------
GRACE_B = 30.0  # the master parked and closed in 11.4 s here (the shutter ~6 s): well inside, even when loaded
SHOWER_S = 40.0  # longer than the grace: had the master not parked, the guard would have acted


@pytest.mark.timeout(180)
def test_a_live_master_through_a_whole_rain_shower_the_guard_does_nothing(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    with contextlib.ExitStack() as stack:
        rig = stack.enter_context(make_rig(tmp_path, lon, ra, dec, GRACE_B, safety={"safe_for": 5.0}))
        indi, wire, watch, guard = imaging_under_a_guard(stack, rig, lon, dec)
        set_precipitation(indi.host, indi.port, 10)
        wait_until(lambda: watch.weather.status == "alert", 5, "WEATHER_STATUS Alert", 0.01)
        alert = time.monotonic()
        wait_until(lambda: not not_safe(indi), GRACE_B, "the master parking and closing within the grace", 0.2,
                   detail=lambda: f"{not_safe(indi)}\n{logs(rig, guard)}")
        print(f"\nthe master parked and closed {time.monotonic() - alert:.1f} s after the rain alert")
        time.sleep(max(0.0, SHOWER_S - (time.monotonic() - alert)))
        set_precipitation(indi.host, indi.port, 0)
        wait_until(lambda: watch.weather.status == "ok", 5, "WEATHER_STATUS Ok", 0.01)
        dry = time.monotonic()

        # the night resumes after safety.safe_for: the master opens and unparks again, the guard lets it
        def imaging_again():
            return [t for t, env in wire.envelopes("night_state", "master")
                    if t > dry and env.payload["to"] == "imaging"]

        wait_until(lambda: dome_open(indi) and not mount_parked_now(indi) and imaging_again(), 60,
                   "the night imaging again after the shower", 0.2, detail=lambda: logs(rig, guard))
        time.sleep(2.0 * 2)  # two guard_state heartbeats more
        states = guard_states(wire)
        assert states, "the guard published no state"
        # blind only while it first connects; never acting, never acted
        first_armed = next(i for i, s in enumerate(states) if s["state"] == "armed")
        assert {s["state"] for s in states[first_armed:]} == {"armed"}, \
            [s for s in states[first_armed:] if s["state"] != "armed"][:3]
        assert any(s["unsafe"] for s in states), "the guard never saw the rain"
        assert all(s["master_online"] is not False for s in states), "the guard lost the master's heartbeat"
        assert all(s["last_action"] is None for s in states)
        assert not guard_alarms(wire), guard_alarms(wire)
        text = guard.log_text()
        assert "ACTING" not in text and "guard: parking" not in text and "guard: closing" not in text, text[-3000:]
        assert guard.poll() is None, "the guard exited"
