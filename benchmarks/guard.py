"""The independent guard (`indisync guard`) on the real simulators; prints one JSON document.

The rig (indisync.sim.guard_rig, shared with tests/integration/test_guard_sim.py): one indiserver with
the INDI 1.9.9 Telescope, Dome, Weather and CCD Simulators, a private mosquitto, a real `indisync run`
master imaging 3 s frames with the mount out and the dome open, and a real `indisync guard` process on
the master's config (guard.interval 0.5 s, retry 3 s), at a site where it is local midnight now (the
sun never decides). Each run builds a rig afresh.

- ``master_killed`` (--runs times): the master killed with SIGKILL (no park, no close, no goodbye),
  then rain (WEATHER_CONTROL.Precip = 10; the Alert read back by our own INDI client, a callback).
  From that Alert: ``acting_s`` (the guard's guard_state "acting" arriving on MQTT), ``parked_s`` and
  ``closed_s`` (TELESCOPE_PARK PARK and DOME_SHUTTER SHUTTER_CLOSE, state Ok, read afresh from the
  server every --poll s: an upper bound by one read), ``safe_s`` (the later), ``alarm_mqtt_s`` (the
  guard_acted alarm arriving on MQTT) and ``notified_s`` (apprise's json:// POST of it arriving at a
  local HTTP endpoint). Each over the runs: min / median / max, and the bound --grace + 15 s
  (``bound_met``: every run's safe_s within it, and never before grace - 1 s).
- ``live_master``: the master alive through a rain shower longer than the guard's grace
  (--live-grace, default 30: the master's own park and close take ~11 s, which a grace of 10 would not
  cover, so with --grace the guard would rightly act); rain for --shower s (default live-grace + 10),
  then dry: the master's ``parked_s``/``closed_s``/``safe_s`` from the Alert, ``resumed_after_dry_s``
  (its night_state back to imaging, safety.safe_for 5 s), and what the guard did: ``guard_actions``
  (its ACTING decisions, in its log), ``guard_park_or_close_commands``, ``guard_alarms``,
  ``guard_states_seen`` (goal: 0 actions, 0 alarms, only "armed" once connected) and whether it saw
  the rain and the master online throughout.

    .venv/bin/python benchmarks/guard.py                       # both, 3 runs of master_killed: ~5 min
    .venv/bin/python benchmarks/guard.py --scenario master_killed --runs 5 --grace 10

Times are wall seconds on this machine (``load_1min`` is printed with them): on a loaded machine the
simulators' own slews and the reads stretch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from indisync.sim.guard_rig import (GUARD, Inbox, dome_open, guard_alarms, guard_alarms_timed, guard_states,
                                    guard_states_timed, imaging_under_a_guard, logs, make_rig)
from indisync.sim.indi import set_precipitation
from indisync.sim.night import longitude_for_local_hour, mount_parked_now, shutter_closed, target_east_high
from indisync.sim.waiting import wait_until

SCENARIOS = ("master_killed", "live_master")
BOUND_MARGIN_S = 15.0  # the guard's bound: grace + this (the park and the ~6 s shutter on a loaded machine)
WATCH_BEYOND_S = 45.0  # how long past the bound a slow run is still measured before it is given up
LIVE_SAFE_FOR_S = 5.0  # safety.safe_for of the live master: the night resumes this long after the dry


def rounded(value):
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return round(value, 2) if isinstance(value, float) else value


def spread(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def rain_alert(indi, watch) -> float:
    """Make it rain; the moment our own client sees WEATHER_STATUS Alert (read back)."""
    set_precipitation(indi.host, indi.port, 10)
    wait_until(lambda: watch.weather.status == "alert", 10, "WEATHER_STATUS Alert (read back)", 0.01)
    return time.monotonic()


def until_safe(indi, alert: float, timeout: float, poll: float, what: str, detail) -> dict:
    """From ``alert``: when the mount first read parked and the dome closed (each read afresh)."""
    seen: dict[str, float] = {}

    def both():
        if "parked" not in seen and mount_parked_now(indi):
            seen["parked"] = time.monotonic() - alert
        if "closed" not in seen and shutter_closed(indi):
            seen["closed"] = time.monotonic() - alert
        return len(seen) == 2

    wait_until(both, timeout, what, poll, detail=lambda: f"seen {seen}\n{detail()}")
    return {"parked_s": seen["parked"], "closed_s": seen["closed"], "safe_s": max(seen.values())}


def first_after(timed, alert: float, match) -> float | None:
    hits = [t - alert for t, item in timed if t >= alert and match(item)]
    return hits[0] if hits else None


# ---- master_killed ------------------------------------------------------------------------------------
def one_killed_run(workdir: Path, grace: float, poll: float) -> dict:
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    bound = grace + BOUND_MARGIN_S
    with contextlib.ExitStack() as stack:
        inbox = Inbox()
        stack.callback(inbox.close)
        rig = stack.enter_context(make_rig(workdir, lon, ra, dec, grace, urls=[inbox.url]))
        indi, wire, watch, guard = imaging_under_a_guard(stack, rig, lon, dec)
        rig.kill_node("master")  # SIGKILL to its process group
        if mount_parked_now(indi) or not dome_open(indi):
            raise RuntimeError("the rig was not out when the master died (mount parked or dome not open)")
        alert = rain_alert(indi, watch)
        safe = until_safe(indi, alert, bound + WATCH_BEYOND_S, poll,
                          "the guard parking the mount and closing the dome", lambda: logs(rig, guard))
        wait_until(lambda: first_after(guard_alarms_timed(wire), alert, lambda a: a["cause"] == "guard_acted"),
                   20, "the guard_acted alarm on MQTT", 0.05, detail=lambda: logs(rig, guard))
        with inbox.cond:
            inbox.cond.wait_for(lambda: any("guard acting" in b.get("title", "") for _, b in inbox.arrivals), 30)
            arrivals = list(inbox.arrivals)
        acted_alarm = next(a for t, a in guard_alarms_timed(wire) if t >= alert and a["cause"] == "guard_acted")
        return {
            **safe,
            "acting_s": first_after(guard_states_timed(wire), alert, lambda s: s["state"] == "acting"),
            "alarm_mqtt_s": first_after(guard_alarms_timed(wire), alert, lambda a: a["cause"] == "guard_acted"),
            "notified_s": first_after(arrivals, alert, lambda b: "guard acting" in b.get("title", "")),
            "secured_alarm_mqtt_s": first_after(guard_alarms_timed(wire), alert,
                                                lambda a: a["cause"] == "guard_secured"),
            "alarm_level": acted_alarm["level"],
            "within_bound": safe["safe_s"] <= bound,
            "not_before_grace": safe["safe_s"] >= grace - 1.0,
        }


def master_killed(args, workdir: Path) -> dict:
    runs, error = [], None
    for i in range(args.runs):
        try:
            runs.append(one_killed_run(workdir / f"killed{i + 1}", args.grace, args.poll))
            print(json.dumps(rounded({"master_killed_run": i + 1, **runs[-1]})), file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - report what we have, and why it stopped
            error = f"run {i + 1}: {type(exc).__name__}: {str(exc)[:3000]}"
            print(error, file=sys.stderr)
            break
    bound = args.grace + BOUND_MARGIN_S
    return {
        "runs": runs,
        "grace_s": args.grace,
        **{key: spread(r[key] for r in runs) for key in ("acting_s", "parked_s", "closed_s", "safe_s",
                                                           "alarm_mqtt_s", "notified_s")},
        "bound_s": bound,
        "bound_met": bool(runs) and len(runs) == args.runs and error is None
        and all(r["within_bound"] and r["not_before_grace"] for r in runs),
        "error": error,
    }


# ---- live_master --------------------------------------------------------------------------------------
def live_master(args, workdir: Path) -> dict:
    grace = args.live_grace
    shower = args.shower if args.shower is not None else grace + 10.0
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    result: dict = {"grace_s": grace, "shower_s": shower, "safe_for_s": LIVE_SAFE_FOR_S}
    try:
        with contextlib.ExitStack() as stack:
            rig = stack.enter_context(make_rig(workdir / "live", lon, ra, dec, grace,
                                               safety={"safe_for": LIVE_SAFE_FOR_S}))
            indi, wire, watch, guard = imaging_under_a_guard(stack, rig, lon, dec)
            alert = rain_alert(indi, watch)
            result.update(until_safe(indi, alert, grace + WATCH_BEYOND_S, args.poll,
                                     "the master parking the mount and closing the dome", lambda: logs(rig, guard)))
            time.sleep(max(0.0, shower - (time.monotonic() - alert)))
            set_precipitation(indi.host, indi.port, 0)
            wait_until(lambda: watch.weather.status == "ok", 10, "WEATHER_STATUS Ok (read back)", 0.01)
            dry = time.monotonic()
            result["shower_measured_s"] = dry - alert

            def imaging_again():
                return [t for t, env in wire.envelopes("night_state", "master") if t > dry and env.payload["to"] ==
                        "imaging"]

            wait_until(lambda: dome_open(indi) and not mount_parked_now(indi) and imaging_again(), 60,
                       "the night imaging again after the shower", 0.2, detail=lambda: logs(rig, guard))
            result["resumed_after_dry_s"] = imaging_again()[0] - dry
            time.sleep(2.0 * 2)  # two guard_state heartbeats more
            states = guard_states(wire)
            text = guard.log_text()
            first_armed = next((i for i, s in enumerate(states) if s["state"] == "armed"), len(states))
            result.update({
                "guard_actions": text.count("guard: ACTING"),
                "guard_park_or_close_commands": text.count("guard: parking") + text.count("guard: closing"),
                "guard_alarms": len(guard_alarms(wire)),
                "guard_last_action": next((s["last_action"] for s in reversed(states) if s["last_action"]), None),
                "guard_states_seen": sorted({s["state"] for s in states[first_armed:]}),
                "guard_saw_rain": any(s["unsafe"] for s in states),
                "guard_saw_master_online_throughout": bool(states) and all(s["master_online"] is not False
                                                                           for s in states),
                "guard_still_running": guard.poll() is None,
            })
            result["goal_met"] = (result["guard_actions"] == 0 and result["guard_alarms"] == 0
                                  and result["guard_park_or_close_commands"] == 0
                                  and result["guard_states_seen"] == ["armed"] and result["guard_saw_rain"]
                                  and result["guard_saw_master_online_throughout"] and result["safe_s"] <= grace)
            result["error"] = None
    except Exception as exc:  # noqa: BLE001 - report what we have, and why it stopped
        result["error"] = f"{type(exc).__name__}: {str(exc)[:3000]}"
        result["goal_met"] = False
        print(result["error"], file=sys.stderr)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=(*SCENARIOS, "both"), default="both")
    parser.add_argument("--runs", type=int, default=3, help="runs of master_killed (a fresh rig each)")
    parser.add_argument("--grace", type=float, default=10.0, help="guard.grace for master_killed, s")
    parser.add_argument("--live-grace", type=float, default=30.0,
                        help="guard.grace for live_master, s (above the master's own ~11 s park and close)")
    parser.add_argument("--shower", type=float, default=None, help="live_master's rain, s (default live-grace + 10)")
    parser.add_argument("--poll", type=float, default=0.05, help="s between fresh reads of the park and the shutter")
    parser.add_argument("--keep", action="store_true", help="keep the rigs' folders (logs, configs) afterwards")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give 1 or more")
    for name in ("grace", "live_grace", "poll"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: give a positive number of seconds")
    if args.shower is not None and not args.shower > args.live_grace:
        parser.error(f"--shower {args.shower}: give more than --live-grace ({args.live_grace:g} s), or the guard "
                     "could not act in it anyway and 'it did nothing' would prove nothing")

    workdir = Path(tempfile.mkdtemp(prefix="indisync-bench-guard-"))
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    report: dict = {"benchmark": "guard", "guard_name": GUARD, "cpus": os.cpu_count(), "load_1min_before": load_before}
    if args.scenario in ("master_killed", "both"):
        report["master_killed"] = master_killed(args, workdir)
    if args.scenario in ("live_master", "both"):
        report["live_master"] = live_master(args, workdir)
    report["load_1min_after"] = os.getloadavg()[0]
    report["wall_s"] = time.monotonic() - started
    failed = any(report[s].get("error") for s in SCENARIOS if s in report)
    report["ok"] = (report.get("master_killed", {}).get("bound_met", True)
                    and report.get("live_master", {}).get("goal_met", True) and not failed)
    if args.keep or failed:
        report["workdir"] = str(workdir)  # the rigs' logs, for a look
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(rounded(report), indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
