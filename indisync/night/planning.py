"""The night's plan and window from the config and the rig (no hardware beyond reading the mount's
site): which steps tonight has (``build_plan``), when it may image (``night_window``), when the sky
is right for flats (``flat_intervals``) and the deadlines of its busy states. Astropy is imported
only inside ``night_window`` and ``flat_intervals``."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from ..errors import IndisyncError
from .machine import NightPlan, State
from .meridian import FlipSettings

log = logging.getLogger(__name__)

READOUT_MARGIN_S = 5.0  # a frame "ends" this long after its exposure: download and write
COOL_MARGIN_S = 30.0  # beyond the cooling timeout, for the slowest node's answer
DEFAULT_COOL_TIMEOUT_S = 900.0
COMMAND_TIMEOUT_S = 120.0  # dome, park, unpark
PIER_SIDE_WAIT_S = 5.0  # after the flip slew ended Ok, how long TELESCOPE_PIER_SIDE may take to follow
ANSWER_MARGIN_S = 60.0  # beyond a node's own bound of a flats or darks run, for its answer
SAME_NIGHT_H = 12.0  # a flats interval belongs to tonight when it ends (dusk) / starts (dawn) this close to the window


def mount_site(mount) -> tuple[float, float, float] | None:
    """(latitude, longitude east, elevation) from the mount's GEOGRAPHIC_COORD, or None."""
    if mount is None:
        return None
    if hasattr(mount, "site"):
        return mount.site()
    snap = mount.client.snapshot(mount.name, "GEOGRAPHIC_COORD")
    if snap is None:
        return None
    return snap.values.get("LAT"), snap.values.get("LONG"), snap.values.get("ELEV", 0.0)


def flats_site(cfg, devices):
    """The site for the flats' sun and flat spot: the site: section, else the mount's GEOGRAPHIC_COORD
    (a SiteSettings), or None."""
    from .settings import SiteSettings

    if cfg.site is not None:
        return cfg.site
    try:
        found = mount_site(getattr(devices, "mount", None))
    except Exception as exc:  # noqa: BLE001 - no site: no sky flats, said by the caller
        log.warning("could not read the mount's GEOGRAPHIC_COORD: %s", exc)
        return None
    if found is None or found[0] is None or found[1] is None:
        return None
    lat, lon, elev = found
    return SiteSettings(latitude=lat, longitude=((lon + 180.0) % 360.0) - 180.0, elevation=elev or 0.0)


def sky_flats_mode(cfg, devices) -> str | None:
    """flats.sky when the rig can take sky flats (a mount to point, a site for the sun), else None."""
    sky = cfg.flats.sky
    if sky is None:
        return None
    if getattr(devices, "mount", None) is None:
        log.warning("flats.sky is %s, but sky flats need a mount (indi.mount) to point at the flat spot: "
                    "no sky flats tonight", sky)
        return None
    if flats_site(cfg, devices) is None:
        log.warning("flats.sky is %s, but there is no site (no site: section, no GEOGRAPHIC_COORD from the mount): "
                    "no sky flats tonight; add site: {latitude: .., longitude: ..}", sky)
        return None
    return sky


def calibration_timeouts(cfg) -> dict[str, float]:
    """Deadlines of the calibration states: a flats state covers unpark, open, the slew, cooling (in
    parallel) and every node's whole flats run; calibrating a panel run and a darks run."""
    flats, darks = cfg.flats, cfg.darks
    sky = 2 * COMMAND_TIMEOUT_S + max(slew_timeout(cfg), flats.cool_timeout) + flats.timeout + ANSWER_MARGIN_S
    calibrating = COMMAND_TIMEOUT_S + (flats.timeout + ANSWER_MARGIN_S if flats.panel else 0.0) + (
        darks.timeout + ANSWER_MARGIN_S if darks.enabled and "end" in darks.when else 0.0)
    return {State.DUSK_FLATS.value: sky, State.DAWN_FLATS.value: sky, State.CALIBRATING.value: calibrating}


def flat_intervals(cfg, devices, now: float, window_start: float | None = None,
                   window_end: float | None = None) -> tuple[tuple | None, tuple | None]:
    """Tonight's (dusk, dawn) sky-flats intervals, epoch s (start, end) each, or None: the sun between
    flats.sun_altitude (calib.sky.flat_windows), those of the night whose window is [window_start,
    window_end] (the dusk ending within SAME_NIGHT_H of its start, the dawn starting within it of its
    end; no window: now). (None, None) without flats.sky or a site."""
    if cfg.flats.sky is None:
        return None, None
    site = flats_site(cfg, devices)
    if site is None:
        return None, None
    from ..calib.sky import flat_windows

    begin = window_start if window_start is not None else now
    end = window_end if window_end is not None else begin
    sun = (cfg.flats.sun_high, cfg.flats.sun_low)
    dusk = flat_windows(site, datetime.fromtimestamp(now, timezone.utc), *sun).dusk  # under way, or the next
    # the morning after the window: searched from an hour before its end (the next morning's when
    # started in the morning twilight, this morning's when started after midnight)
    dawn = flat_windows(site, datetime.fromtimestamp(max(now, end - 3600.0), timezone.utc), *sun).dawn
    near = SAME_NIGHT_H * 3600.0
    dusk = dusk if dusk is not None and abs(dusk[1] - begin) <= near else None
    dawn = dawn if dawn is not None and abs(dawn[0] - end) <= near else None
    log.info("sky flats tonight (flats.sky %s, the sun %g..%g deg): dusk %s, dawn %s", cfg.flats.sky,
             cfg.flats.sun_high, cfg.flats.sun_low, _span_text(dusk), _span_text(dawn))
    return dusk, dawn


def _span_text(span) -> str:
    if span is None:
        return "none"
    fmt = "%Y-%m-%d %H:%M UTC"
    return (f"{datetime.fromtimestamp(span[0], timezone.utc).strftime(fmt)} - "
            f"{datetime.fromtimestamp(span[1], timezone.utc).strftime(fmt)}")


def site_longitude(cfg, devices) -> float | None:
    """East longitude for the hour angle: the site: section's, else the mount's GEOGRAPHIC_COORD."""
    if cfg.site is not None:
        return cfg.site.longitude_east
    try:
        found = mount_site(getattr(devices, "mount", None))
    except Exception as exc:  # noqa: BLE001 - reported by the caller as no longitude
        log.warning("could not read the mount's GEOGRAPHIC_COORD: %s", exc)
        return None
    if found is None or found[1] is None:
        return None
    return ((found[1] + 180.0) % 360.0) - 180.0


def cool_timeout(cfg) -> float:
    cooling = getattr(getattr(cfg, "camera", None), "cooling", None)
    return cooling.timeout if cooling else DEFAULT_COOL_TIMEOUT_S


def slew_timeout(cfg) -> float:
    return cfg.night.slew_timeout if cfg.night else COMMAND_TIMEOUT_S


def build_plan(cfg, devices, frames: list, has_guider: bool, season: bool = False,
               longest: float | None = None) -> NightPlan:
    """Tonight's plan: ``frames`` is the batch (PlannedFrame list), ``has_guider`` whether a guider exists.
    ``season``: the targets come from the season (a scheduler: section), so there is something to
    point at whatever master.target says; ``longest``: the longest frame (s) when ``frames`` does not
    tell (the season's plan lines)."""
    from .actions.center import centering_timeout

    night = cfg.night
    has_mount = getattr(devices, "mount", None) is not None
    has_dome = getattr(devices, "dome", None) is not None
    weather = getattr(cfg.indi, "weather", None) is not None
    timeouts = dict(NightPlan().timeouts)
    timeouts[State.COOLING.value] = cool_timeout(cfg) + 2 * COOL_MARGIN_S
    if night is not None:
        timeouts[State.SLEWING.value] = night.slew_timeout + COMMAND_TIMEOUT_S
    aims = cfg.master.target_coords is not None or season
    slew = bool(aims and has_mount)
    center = bool(slew and night is not None and night.center)
    if night is not None and night.center and not slew:
        log.warning("night.center is on, but centring needs master.target with ra/dec (or a scheduler: section) "
                    "and a mount: the night will not centre")
    if center:
        timeouts[State.CENTERING.value] = centering_timeout(cfg.acquire)
    flip = cfg.flip is not None and aims and has_mount
    if flip:  # the hold for the flip (at most the longest frame) + the slew + the pier side's check
        longest = max((f.delay_before + f.exposure + READOUT_MARGIN_S for f in frames), default=0.0) \
            if longest is None else longest + READOUT_MARGIN_S
        timeouts[State.FLIPPING.value] = longest + slew_timeout(cfg) + COMMAND_TIMEOUT_S + PIER_SIDE_WAIT_S
    timeouts.update(calibration_timeouts(cfg))
    darks = cfg.darks
    return NightPlan(
        cool=bool(night and night.cool),
        slew=slew,
        center=center,
        center_on_failure=cfg.acquire.on_failure,
        guide=has_guider,
        park_at_end=bool(night and night.park_at_end and (has_mount or has_dome)),
        warm_at_end=bool(night and night.warm_at_end),
        weather=weather,
        flip=flip,
        flip_settings=cfg.flip or FlipSettings(),
        safe_for=cfg.safety.safe_for,
        stale_after=cfg.safety.stale_after,
        park_retry=cfg.safety.park_retry,
        can_park=has_mount or has_dome,
        frame_retry=cfg.safety.frame_retry,
        timeouts=timeouts,
        sky_flats=sky_flats_mode(cfg, devices),
        end_calibration=bool(cfg.flats.panel or (darks.enabled and "end" in darks.when)),
        darks_when_parked=bool(darks.enabled and "rain" in darks.when),
    )


def night_window(cfg, devices, now: float, report=None,
                 season=None) -> tuple[float | None, float | None, str | None]:
    """(start, end, note) of the usable window, epoch seconds; (None, None, None) without night:.
    ``season`` (indisync.season.runtime.SeasonRuntime): the window is the dark one from the first
    time some target of the season is eligible (master.target is not looked at)."""
    if cfg.night is None:
        return None, None, None
    from ..astro.site import compare_sites, night_windows
    from .settings import SiteSettings

    found = None
    try:
        found = mount_site(getattr(devices, "mount", None))
    except Exception as exc:  # noqa: BLE001 - only a cross-check when the config has a site
        log.warning("could not read the mount's GEOGRAPHIC_COORD: %s", exc)
    site = cfg.site
    if site is not None:
        mismatch = compare_sites(site, found)
        if mismatch:
            log.warning(mismatch)
            if report is not None:
                report.error(mismatch)
    elif found is not None and found[0] is not None:
        lat, lon, elev = found
        site = SiteSettings(latitude=lat, longitude=((lon + 180.0) % 360.0) - 180.0, elevation=elev or 0.0)
        log.info("site from the mount's GEOGRAPHIC_COORD: %.4f, %.4f E", site.latitude, site.longitude_east)
    else:
        raise IndisyncError("night: needs a site: no site: section and no GEOGRAPHIC_COORD from the mount; add "
                            "site: {latitude: .., longitude: .., elevation: ..}")
    target = None if season is not None else cfg.master.target_coords
    windows = night_windows(site, cfg.night, target, datetime.fromtimestamp(now, timezone.utc))
    log.info("tonight: %s", windows.to_dict())
    if windows.usable is None:
        return now, now, "no usable window tonight (dark, target altitude and end_at do not overlap)"
    start_at = windows.usable.start.timestamp() if windows.usable.start else now
    if season is not None:
        eligible = season.window(max(now, start_at))
        if eligible is None:
            return now, now, "no target of the season is observable tonight (indisync plan says why)"
        start_at = max(start_at, eligible[0])
        if windows.usable.end is not None and start_at >= windows.usable.end.timestamp():
            return now, now, "no target of the season is observable inside tonight's dark window"
    # Already open: the search began at ``now``, but datetime keeps microseconds and rounds, so the
    # round trip may land a hair after ``now`` (a needless second in waiting_dark).
    start_at = min(start_at, now) if start_at - now < 1.0 else start_at
    end_at = windows.usable.end.timestamp() if windows.usable.end else None
    return start_at, end_at, None
