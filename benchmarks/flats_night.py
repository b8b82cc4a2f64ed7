"""A whole night with dusk flats, lights, dawn flats and the end-of-night calibration in one state
timeline: the night's own machine (indisync.night.machine) and planning (the dark window and the sky
flats intervals from astropy, offline) for a site and date, the rig's answers scripted at the times a
rig gives them (the flats' own figures: benchmarks/flats.py on the simulators). Prints JSON; --text
prints the timeline as README shows it.

    .venv/bin/python benchmarks/flats_night.py --text
    .venv/bin/python benchmarks/flats_night.py --date 2027-06-21 --latitude 52.5 --longitude 13.4
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from datetime import datetime, timezone
from indisync.config import load_config
from indisync.night.planning import night_window, flat_intervals
from indisync.night.machine import Ev, NightPlan, start, step

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--date", default="2026-12-10", help="the night's date (the afternoon before it)")
p.add_argument("--latitude", type=float, default=48.14)
p.add_argument("--longitude", type=float, default=11.58)
p.add_argument("--text", action="store_true")
opts = p.parse_args()
cfg = load_config(data={"site": {"latitude": opts.latitude, "longitude": opts.longitude, "elevation": 520},
                        "night": {"start_sun_altitude": -12, "end_sun_altitude": -12},
                        "flats": {"sky": "both", "panel": True}, "darks": {"enabled": True}})
now = datetime.fromisoformat(opts.date).replace(hour=12, tzinfo=timezone.utc).timestamp()
ws, we, _ = night_window(cfg, None, now)
dusk, dawn = flat_intervals(cfg, None, now, ws, we)
plan = NightPlan(cool=True, slew=True, guide=True, park_at_end=True, warm_at_end=True, weather=True, safe_for=60,
                 stale_after=1e9, can_park=True, sky_flats="both", end_calibration=True, darks_when_parked=True)
t = now
snap, _ = start(t, plan, ws, we, next_duration=605.0, flats=(dusk, dawn))
rows = [(t, None, snap.state, snap.reason)]
def send(ev, at, **d):
    global snap
    prev = snap.state
    snap, _ = step(snap, Ev.WEATHER, at, plan, {"status": "ok"})
    snap, _ = step(snap, ev, at, plan, d)
    if snap.state != prev:
        rows.append((at, prev, snap.state, snap.reason))
send(Ev.PARKED, t + 40)
for k in range(0, int(dusk[0] - t) + 120, 60):
    send(Ev.CLOCK, t + k)
    if snap.state == "dusk_flats":
        break
at = dusk[0] + 60 * 24
send(Ev.FLATS_DONE, at, ok=True, direction="dusk", kept=60, taken=66)
send(Ev.PARKED, at + 60)
send(Ev.CLOCK, ws)
send(Ev.COOLED, ws + 300); send(Ev.SLEWED, ws + 360); send(Ev.CENTERED, ws + 420, ok=True, error_arcsec=4.2, attempts=2)
send(Ev.GUIDER_STARTED, ws + 480, ok=True)
send(Ev.FRAME_DONE, we - 300, ok=True, next_duration=605.0)
send(Ev.PARKED, we - 200)
for k in range(0, int(dawn[0] - we) + 400, 60):
    send(Ev.CLOCK, we + k)
    if snap.state == "dawn_flats":
        break
at = dawn[0] + 60 * 20
send(Ev.FLATS_DONE, at, ok=True, direction="dawn", kept=60, taken=64)
send(Ev.PARKED, at + 60)
send(Ev.CALIBRATED, at + 3600, reason="panel: ok, 3 node(s); darks: ok, 12 set(s)")
send(Ev.WARMED, at + 3700)
if dusk is None or dawn is None:
    sys.exit(f"no sky flats interval at this site on {opts.date} (dusk {dusk}, dawn {dawn})")
if opts.text:
    for at, a, b, why in rows:
        print(f"{datetime.fromtimestamp(at, timezone.utc):%H:%M} UTC  {b:<16} {why[:100]}")
else:
    iso = lambda e: datetime.fromtimestamp(e, timezone.utc).isoformat(timespec="seconds")
    print(json.dumps({"site": [opts.latitude, opts.longitude], "date": opts.date,
                      "window": [iso(ws), iso(we)], "dusk_flats": [iso(v) for v in dusk],
                      "dawn_flats": [iso(v) for v in dawn],
                      "timeline": [{"at": iso(at), "from": a, "to": b, "reason": why} for at, a, b, why in rows]},
                     indent=1))
