"""`indisync night`: tonight's windows — dark from–to, the target above min_altitude from–to, the
usable window and its length — for the config's site (or the mount's GEOGRAPHIC_COORD)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

from ..errors import ConfigError

HELP = "print the night's windows: dark, target above night.min_altitude, the usable window and its length"


def add_arguments(parser) -> None:
    parser.add_argument("--date", metavar="YYYY-MM-DD", help="the night starting that evening (default: from now)")
    parser.add_argument("--json", action="store_true", help="print the windows as JSON")


def run(args, cfg) -> int:
    from ..astro.site import date_start, night_windows
    from ..night.settings import NightSettings

    site, where = site_for(cfg)
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise ConfigError(f"--date {args.date!r}: expected YYYY-MM-DD, for example 2026-12-03") from None
        start = date_start(site, day)
    else:
        start = datetime.now(timezone.utc)
    night = cfg.night or NightSettings()
    target = cfg.master.target_coords
    windows = night_windows(site, night, target, start)
    if args.json:
        print(json.dumps({"site": {"latitude": site.latitude, "longitude": site.longitude_east,
                                   "elevation": site.elevation, "from": where},
                          "target_name": cfg.master.target, "min_altitude": night.min_altitude, **windows.to_dict()},
                         indent=2))
        return 0
    from ..timezones import site_zone

    print(render(windows, site, where, cfg.master.target, target is not None, night, site_zone(cfg)))
    return 0


def site_for(cfg):
    """The config's site, else the mount's GEOGRAPHIC_COORD; (site, where it came from)."""
    from ..night.settings import SiteSettings

    if cfg.site is not None:
        return cfg.site, "config"
    if cfg.indi.mount is None:
        raise ConfigError("no site: section and no mount (indi.mount) to read GEOGRAPHIC_COORD from; "
                          "add site: {latitude: .., longitude: .., elevation: ..}")
    from ..devices.session import open_devices
    from ..night.planning import mount_site

    with open_devices(cfg.indi, need=("mount",), want=("mount",)) as devices:
        found = mount_site(devices.mount)
    if found is None:
        raise ConfigError(f"no site: section and the mount {cfg.indi.mount!r} has no GEOGRAPHIC_COORD; add "
                          "site: {latitude: .., longitude: .., elevation: ..}")
    lat, lon, elev = found
    return SiteSettings(latitude=lat, longitude=((lon + 180.0) % 360.0) - 180.0, elevation=elev), "mount"


def _fmt(when, zone=None) -> str:
    """UTC, and the site's wall clock beside it (site.timezone, else this computer's zone)."""
    if when is None:
        return "(beyond the search)"
    text = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if zone is not None:
        local = when.astimezone(zone)
        if local.utcoffset() or local.tzname() not in ("UTC", "GMT"):
            text += local.strftime(" (%H:%M %Z)")
    return text


def _span(seconds) -> str:
    if seconds is None:
        return "-"
    minutes = int(round(seconds / 60.0))
    return f"{minutes // 60} h {minutes % 60:02d} min"


def render(windows, site, where, name, has_coords, night, zone=None) -> str:
    fmt = lambda when: _fmt(when, zone)  # noqa: E731
    lines = [f"site     {site.latitude:.4f}, {site.longitude_east:.4f} E, {site.elevation:g} m (from the {where})"]
    if windows.dark is None:
        lines.append(f"dark     none: the sun stays above {night.start_sun_altitude:g}° (no night to image)")
    else:
        lines.append(f"dark     {fmt(windows.dark.start)} – {fmt(windows.dark.end)}  "
                     f"(sun below {night.start_sun_altitude:g}°/{night.end_sun_altitude:g}°)")
    if not has_coords:
        lines.append(f"target   {name}: no coordinates (master.target {{name, ra, dec}}), altitude not checked")
    elif windows.target is None:
        lines.append(f"target   {name} never above {night.min_altitude:g}° while it is dark")
    else:
        lines.append(f"target   {name} above {night.min_altitude:g}°: {fmt(windows.target.start)} – "
                     f"{fmt(windows.target.end)}")
    if windows.end_at is not None:
        lines.append(f"end_at   {fmt(windows.end_at)}")
    if windows.usable is None:
        lines.append("usable   none tonight")
    else:
        lines.append(f"usable   {fmt(windows.usable.start)} – {fmt(windows.usable.end)}  "
                     f"({_span(windows.usable.seconds)})")
    return "\n".join(lines)
