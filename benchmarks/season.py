"""The season's scheduler (indisync.season): planning time, and a simulated season against a naive
baseline. Pure computation (no servers); prints one JSON document.

- ``planning``: one night for --targets (1,000) random targets (seeded RA/Dec/priority, a
  three-OTA plan each): ``sky_for_night`` + ``plan_night`` wall seconds, median of --runs (3), and
  the same for one ``pick`` (what the night's runtime calls between frames).
- ``season``: --nights (30) nights from --start (2027-03-01) at 48° N 11° E (Europe/Berlin), 20 targets
  spread in RA (seeded Dec 0..70°, priority 3..8; a few with a date range, a few with before_flip),
  goals on three OTAs: ota1 Luminance, ota2 Red/Green/Blue, ota3 Ha/OIII/SII (300 s frames), a horizon
  profile (higher in the east and south), the default moon and sun rules. Seeded weather: whole
  cloudy nights, partly cloudy nights (clear breaks between clouds) and passing clouds; a frame
  under a cloud is lost (counted rejected), after clouds the night re-picks. Each slot costs
  --overhead (download, dither) on top of the exposure; each target change --switch (slew, centre,
  guide). The scheduler (``pick``) and the baseline (``naive_pick``: the highest-priority observable
  target until done) run on the same weather with the same simulation (``simulate_night``: both
  take frames only through ``allowed_filters``' constraint check).
  Per run and per OTA: plan lines and OTA plans completed; shutter-open fraction of the dark time
  (sun below -12°, every night, and of the clear dark time), useful (toward a goal) and with surplus;
  targets complete (every OTA), target changes; and ``violations``: every frame kept is re-checked
  **independently** with astropy (its own AltAz of the target, the sun, the moon, HADec, the moon's
  age from ecliptic longitudes, the night's date from the local clock) at its start, middle and end,
  against every constraint of its filter kind. ``violations`` counts frames past a constraint by more
  than --tolerance (0.05°: nutation, aberration and the moon's geocentric place, which the
  scheduler's numpy ephemeris leaves out, move things by ~0.01°); ``strict_violations`` with 0; the
  smallest margin found is printed for each constraint.

    .venv/bin/python benchmarks/season.py                 # ~1 min
    .venv/bin/python benchmarks/season.py --only planning
    .venv/bin/python benchmarks/season.py --only season --seeds 5   # seeds 16..20, totals

Wall times are this machine's (``load_1min`` printed beside them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from indisync.night.settings import SiteSettings  # noqa: E402
from indisync.season.constraints import HALF_LUNATION_DAYS, limits_for  # noqa: E402
from indisync.season.ephem import sky_for_night  # noqa: E402
from indisync.season.model import Constraints, PlanLine, Progress, Target  # noqa: E402
from indisync.season.scheduler import copy_progress, pick, simulate_night  # noqa: E402
from indisync.season.settings import SchedulerSettings  # noqa: E402

SITE = SiteSettings(latitude=48.0, longitude=11.0, elevation=500.0, timezone="Europe/Berlin")
OTAS = {"ota1": ["Luminance"], "ota2": ["Red", "Green", "Blue"], "ota3": ["Ha", "OIII", "SII"]}
HORIZON = [[0, 25], [60, 32], [120, 35], [180, 32], [240, 25], [300, 20]]
DARK_SUN = -12.0  # the dark time: the sun below the most lenient sun limit


def plan_for(counts: dict[str, int], exposure: float) -> tuple[PlanLine, ...]:
    return tuple(PlanLine(node, f, exposure, counts[node]) for node, filters in OTAS.items() for f in filters)


# -- (a) planning time ---------------------------------------------------------------------------------

def bench_planning(n: int, runs: int, seed: int) -> dict:
    from indisync.season.scheduler import plan_night

    rng = random.Random(seed)
    counts = {"ota1": 40, "ota2": 15, "ota3": 15}
    targets = [Target("bench", f"T{i:04d}", rng.uniform(0, 360), rng.uniform(-30, 85), plan_for(counts, 300.0),
                      priority=rng.randint(1, 10)) for i in range(n)]
    settings = SchedulerSettings()
    when = datetime(2027, 3, 1, 12, tzinfo=timezone.utc).timestamp()
    night_s, pick_s, sky_s = [], [], []
    plan = None
    for _ in range(runs):
        t0 = time.perf_counter()
        sky = sky_for_night(SITE, when)
        t1 = time.perf_counter()
        plan = plan_night(targets, {}, sky, settings)
        t2 = time.perf_counter()
        pick(sky.start + 4 * 3600, targets, {}, sky, settings)  # the table is cached: a runtime's re-pick
        t3 = time.perf_counter()
        sky_s.append(t1 - t0)
        night_s.append(t2 - t0)
        pick_s.append(t3 - t2)
    return {"targets": n, "runs": runs, "night_s_median": round(statistics.median(night_s), 3),
            "night_s": [round(v, 3) for v in night_s], "sky_s_median": round(statistics.median(sky_s), 3),
            "pick_s_median": round(statistics.median(pick_s), 4), "goal_s": 1.0,
            "goal_met": statistics.median(night_s) <= 1.0, "blocks": len(plan.blocks),
            "decisions": len(plan.decisions)}


# -- (b) the season ----------------------------------------------------------------------------------

def season_targets(seed: int, counts: dict[str, int], exposure: float, start: date) -> list[Target]:
    rng = random.Random(seed)
    out = []
    for i in range(20):
        ra = (i * 18.0 + rng.uniform(-6, 6)) % 360.0
        dec = rng.uniform(0.0, 70.0)
        start_date = end_date = None
        constraints = Constraints()
        if i % 7 == 3:  # a date range inside the season
            start_date = (start + timedelta(days=rng.randint(0, 8))).isoformat()
            end_date = (start + timedelta(days=rng.randint(18, 28))).isoformat()
        if i % 6 == 1:
            constraints = Constraints(before_flip=True)
        if i % 9 == 4:
            constraints = Constraints(min_altitude=40.0)
        out.append(Target("season", f"S{i:02d}", round(ra, 4), round(dec, 4), plan_for(counts, exposure),
                          priority=rng.randint(3, 8), start_date=start_date, end_date=end_date,
                          constraints=constraints))
    return out


def season_weather(seed: int, skies) -> list[list[tuple[float, float]]]:
    """Per night, the cloudy intervals (epoch s)."""
    rng = random.Random(seed)
    nights = []
    for sky in skies:
        a, b = sky.start, sky.end
        clouds = []
        roll = rng.random()
        if roll < 0.3:  # overcast all night
            clouds.append((a, b))
        elif roll < 0.55:  # mostly cloudy with clear breaks
            t = a
            while t < b:
                cloudy = rng.uniform(0.5, 3.0) * 3600
                clouds.append((t, min(b, t + cloudy)))
                t += cloudy + rng.uniform(0.3, 2.0) * 3600
        else:  # clear, with passing clouds
            for _ in range(rng.randint(0, 3)):
                s = rng.uniform(a, b)
                clouds.append((s, s + rng.uniform(10, 60) * 60))
        nights.append(sorted(clouds))
    return nights


def clear_fn(clouds):
    def clear(t0: float, t1: float) -> bool:
        return not any(c0 < t1 + 1e-6 and t0 < c1 for c0, c1 in clouds) if t1 > t0 else \
            not any(c0 <= t0 < c1 for c0, c1 in clouds)
    return clear


def run_season(picker: str, targets, skies, weather, settings, overhead_s, switch_s) -> dict:
    progress = {t.name: Progress.for_target(t) for t in targets}
    shots, changes = [], 0
    for sky, clouds in zip(skies, weather):
        plan = simulate_night(targets, progress, sky, settings, picker=picker, clear=clear_fn(clouds),
                              overhead_s=overhead_s, switch_s=switch_s)
        shots.extend(plan.shots)
        changes += sum(1 for d in plan.decisions if d.switch and d.target is not None)
        progress = copy_progress(targets, plan.progress)
    return {"progress": progress, "shots": shots, "changes": changes}


def dark_seconds(skies, weather) -> tuple[float, float]:
    total = clear = 0.0
    for sky, clouds in zip(skies, weather):
        dark = sky.sun_alt < DARK_SUN
        # per grid step: dark samples, and the clear part of each
        for j in np.nonzero(dark)[0]:
            t0 = sky.times[j]
            t1 = t0 + sky.step_s
            covered = sum(max(0.0, min(t1, c1) - max(t0, c0)) for c0, c1 in clouds)
            total += sky.step_s
            clear += max(0.0, sky.step_s - covered)
    return total, clear


def summary(result, targets, dark_s, clear_dark_s) -> dict:
    progress = result["progress"]
    per_ota = {}
    for node in OTAS:
        lines = [(t, line) for t in targets for line in t.lines_for(node)]
        done = sum(1 for t, line in lines if progress[t.name].get(node, line.filter).needed == 0)
        plans = sum(1 for t in targets if progress[t.name].node_complete(t, node))
        shots = [s for s in result["shots"] if s.node == node and not s.lost]
        useful = sum(s.exposure for s in shots if not s.surplus)
        total = sum(s.exposure for s in shots)
        per_ota[node] = {"lines_completed": done, "lines": len(lines), "plans_completed": plans,
                         "frames": sum(1 for s in shots if not s.surplus),
                         "surplus_frames": sum(1 for s in shots if s.surplus),
                         "shutter_open_fraction_of_dark": round(useful / dark_s, 3),
                         "shutter_open_fraction_of_clear_dark": round(useful / clear_dark_s, 3),
                         "with_surplus_of_dark": round(total / dark_s, 3)}
    complete = [t.name for t in targets if progress[t.name].complete(t)]
    return {"per_ota": per_ota, "lines_completed": sum(v["lines_completed"] for v in per_ota.values()),
            "ota_plans_completed": sum(v["plans_completed"] for v in per_ota.values()),
            "targets_complete": len(complete), "complete": complete, "target_changes": result["changes"],
            "lost_frames": sum(1 for s in result["shots"] if s.lost)}


def recheck(shots, targets, settings, tolerance: float) -> dict:
    """Every kept frame against every constraint, with astropy (independent of the scheduler's numpy)."""
    import astropy.units as u
    from astropy.coordinates import (AltAz, EarthLocation, GCRS, GeocentricTrueEcliptic, HADec, SkyCoord,
                                     get_body)
    from astropy.time import Time

    from indisync.astro.site import use_offline_iers

    use_offline_iers()
    kept = [s for s in shots if not s.lost]
    if not kept:
        return {"frames_checked": 0, "violations": 0, "strict_violations": 0}
    by_name = {t.name: t for t in targets}
    loc = EarthLocation.from_geodetic(SITE.longitude_east * u.deg, SITE.latitude * u.deg, SITE.elevation * u.m)
    rows = []  # (shot index, time)
    for k, s in enumerate(kept):
        for f in (0.0, 0.5, 1.0):
            rows.append((k, s.start + f * s.exposure))
    idx = np.array([r[0] for r in rows])
    epochs = np.array([r[1] for r in rows])
    times = Time(epochs, format="unix")
    ra = np.array([by_name[kept[k].target].ra for k in idx])
    dec = np.array([by_name[kept[k].target].dec for k in idx])
    coord = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs")
    altaz = coord.transform_to(AltAz(obstime=times, location=loc))
    alt, az = altaz.alt.deg, altaz.az.deg
    ha = coord.transform_to(HADec(obstime=times, location=loc)).ha.wrap_at(180 * u.deg).deg
    sun = get_body("sun", times)
    moon = get_body("moon", times)
    sun_alt = sun.transform_to(AltAz(obstime=times, location=loc)).alt.deg
    moon_alt = moon.transform_to(AltAz(obstime=times, location=loc)).alt.deg
    sep = moon.separation(coord.transform_to(GCRS(obstime=times))).deg
    ecl = GeocentricTrueEcliptic(equinox=times)
    age = ((moon.transform_to(ecl).lon.deg - sun.transform_to(ecl).lon.deg) % 360.0) / 360.0 * 29.530589
    zone = SITE.zone
    worst = {"altitude": np.inf, "sun": np.inf, "moon": np.inf, "before_flip": np.inf}
    bad, strict_bad, examples = set(), set(), []
    for r, k in enumerate(idx):
        s = kept[k]
        lim = limits_for(by_name[s.target], settings)
        kind = s.kind
        # the horizon profile, interpolated here on its own (linear in azimuth, wrapping)
        floor = lim.min_altitude
        if lim.horizon:
            pts = sorted((a % 360.0, h) for a, h in lim.horizon)
            xs = [p[0] for p in pts] + [pts[0][0] + 360.0]
            ys = [p[1] for p in pts] + [pts[0][1]]
            a = az[r] if az[r] >= xs[0] else az[r] + 360.0
            for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]):
                if x0 <= a <= x1:
                    floor = max(floor, y0 + (y1 - y0) * (a - x0) / (x1 - x0) if x1 > x0 else y0)
                    break
        margins = {"altitude": alt[r] - floor, "sun": lim.sun[kind] - sun_alt[r]}
        if moon_alt[r] >= 0.0:
            distance, width = lim.moon[kind]
            margins["moon"] = sep[r] - distance / (1.0 + ((age[r] - HALF_LUNATION_DAYS) / width) ** 2)
        if lim.before_flip:
            margins["before_flip"] = -ha[r] * 15.0  # east of the meridian: HA < 0
        for key, m in margins.items():
            worst[key] = min(worst[key], m)
            if m < 0:
                strict_bad.add(k)
            if m < -tolerance:
                bad.add(k)
                if len(examples) < 5:
                    examples.append({"target": s.target, "node": s.node, "filter": s.filter,
                                     "at": datetime.fromtimestamp(epochs[r], timezone.utc).isoformat(),
                                     "constraint": key, "margin_deg": round(float(m), 3)})
        night = (datetime.fromtimestamp(s.start, timezone.utc).astimezone(zone) - timedelta(hours=12)).date()
        if (lim.start_date and night < date.fromisoformat(lim.start_date)) or \
                (lim.end_date and night > date.fromisoformat(lim.end_date)):
            bad.add(k)
            strict_bad.add(k)
            if len(examples) < 5:
                examples.append({"target": s.target, "constraint": "date range", "night": night.isoformat()})
    return {"frames_checked": len(kept), "violations": len(bad), "strict_violations": len(strict_bad),
            "tolerance_deg": tolerance, "smallest_margin_deg": {k: (round(float(v), 3) if np.isfinite(v) else None)
                                                                 for k, v in worst.items()},
            "examples": examples}


def bench_season(args) -> dict:
    start = date.fromisoformat(args.start)
    counts = {"ota1": args.luminance, "ota2": args.rgb, "ota3": args.narrowband}
    targets = season_targets(args.seed, counts, args.exposure, start)
    settings = SchedulerSettings(horizon=HORIZON)
    t0 = time.perf_counter()
    skies = []
    for d in range(args.nights):
        noon = datetime.combine(start + timedelta(days=d), datetime.min.time(), tzinfo=timezone.utc) \
            + timedelta(hours=12 - SITE.longitude_east / 15.0)
        skies.append(sky_for_night(SITE, noon.timestamp()))
    weather = season_weather(args.seed + 1, skies)
    dark_s, clear_dark_s = dark_seconds(skies, weather)
    out = {"site": {"latitude": SITE.latitude, "longitude": SITE.longitude_east}, "start": args.start,
           "nights": args.nights, "targets": len(targets),
           "goals_per_target": {node: {f: counts[node] for f in fs} for node, fs in OTAS.items()},
           "exposure_s": args.exposure, "overhead_s": args.overhead, "switch_s": args.switch,
           "weather": {"overcast_nights": sum(1 for w, s in zip(weather, skies) if w and w[0] == (s.start, s.end)),
                       "dark_h": round(dark_s / 3600, 1), "clear_dark_h": round(clear_dark_s / 3600, 1)}}
    for name in ("scheduler", "naive"):
        s0 = time.perf_counter()
        result = run_season(name, targets, skies, weather, settings, args.overhead, args.switch)
        sim_s = time.perf_counter() - s0
        out[name] = summary(result, targets, dark_s, clear_dark_s)
        out[name]["simulate_s"] = round(sim_s, 2)
        out[name]["recheck"] = recheck(result["shots"], targets, settings, args.tolerance)
    sch, nai = out["scheduler"], out["naive"]
    out["scheduler_beats_naive"] = {
        "lines_completed": sch["lines_completed"] > nai["lines_completed"],
        "ota_plans_completed": sch["ota_plans_completed"] > nai["ota_plans_completed"],
        "targets_complete": sch["targets_complete"] >= nai["targets_complete"],
        "zero_violations": sch["recheck"]["violations"] == 0 and nai["recheck"]["violations"] == 0}
    out["season_s"] = round(time.perf_counter() - t0, 1)
    return out


def compare_seeds(args) -> dict:
    rows, totals = [], {"scheduler": [0, 0, 0, 0], "naive": [0, 0, 0, 0]}
    for seed in range(args.seed, args.seed + args.seeds):
        r = bench_season(argparse.Namespace(**{**vars(args), "seed": seed}))
        row = {"seed": seed}
        for name in totals:
            figures = [r[name]["lines_completed"], r[name]["ota_plans_completed"], r[name]["targets_complete"],
                       r[name]["recheck"]["violations"]]
            totals[name] = [a + b for a, b in zip(totals[name], figures)]
            row[name] = dict(zip(("lines", "ota_plans", "targets", "violations"), figures))
        rows.append(row)
    return {"runs": rows, "totals": {k: dict(zip(("lines", "ota_plans", "targets", "violations"), v))
                                     for k, v in totals.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("planning", "season"))
    p.add_argument("--targets", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--start", default="2027-03-01")
    p.add_argument("--nights", type=int, default=30)
    p.add_argument("--luminance", type=int, default=60, help="ota1's Luminance frames per target")
    p.add_argument("--rgb", type=int, default=20, help="ota2's frames per filter per target")
    p.add_argument("--narrowband", type=int, default=20, help="ota3's frames per filter per target")
    p.add_argument("--exposure", type=float, default=300.0)
    p.add_argument("--overhead", type=float, default=10.0, help="s per slot: download, dither")
    p.add_argument("--switch", type=float, default=180.0, help="s per target change: slew, centre, guide")
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--seeds", type=int, default=1, help="also run the season on the next N-1 seeds (targets and "
                                                        "weather): a compact line each and the totals")
    args = p.parse_args(argv)
    out = {"load_1min": round(os.getloadavg()[0], 2)}
    if args.only in (None, "planning"):
        out["planning"] = bench_planning(args.targets, args.runs, args.seed)
    if args.only in (None, "season"):
        out["season"] = bench_season(args)
        if args.seeds > 1:
            out["seeds"] = compare_seeds(args)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
