"""What night tests, the safety benchmark and the demo need to set up a simulated night now: a site
whose local time is what we want (deep night or noon), a target east of the meridian high up, and the
simulated mount at that site with a park position near the target (as a roll-off roof's would be)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .indi import _read_definitions, get_numbers, set_number, set_precipitation

LATITUDE = 45.0
MOUNT = "Telescope Simulator"
WEATHER = "Weather Simulator"
PARK_HA_H = -1.3  # hours: 20 minutes of hour angle east of the target (one hour east of the meridian)


def longitude_for_local_hour(hour: float, now: datetime | None = None) -> float:
    """East longitude (-180..180) whose local mean solar time is ``hour`` now (0: midnight, 12: noon)."""
    now = now or datetime.now(timezone.utc)
    utc_hours = now.hour + now.minute / 60 + now.second / 3600
    return ((hour - utc_hours) * 15 + 540) % 360 - 180


def target_east_high(longitude: float, latitude: float = LATITUDE) -> tuple[float, float]:
    """J2000 (ra, dec) degrees one hour east of the meridian at dec = latitude (about 78° up), now."""
    import astropy.units as u
    from astropy.coordinates import Longitude
    from astropy.time import Time

    from ..astro.site import use_offline_iers

    use_offline_iers()
    lst = Time.now().sidereal_time("apparent", longitude=Longitude(longitude * u.deg))
    return float((lst.deg + 15.0) % 360.0), float(latitude)


def prepare_mount(indi, longitude: float, dec: float, latitude: float = LATITUDE, park: bool = False,
                  weather: bool = False) -> None:
    """The simulated mount at the site with its park position near the target (read back); with
    ``park`` parked there; with ``weather`` the Weather Simulator connected, updating every second, dry."""
    from ..config import IndiConfig
    from ..devices.session import open_devices

    cfg = IndiConfig(host=indi.host, port=indi.port, weather=WEATHER if weather else None)
    with open_devices(cfg, need=("mount", "weather") if weather else ("mount",), want=("mount",)) as dev:
        if weather:
            dev.weather.set_update_period(1)  # reads it back
            set_precipitation(indi.host, indi.port, 0)
        dev.mount.set_site(latitude, longitude % 360.0, 0.0)
        set_number(indi.host, indi.port, MOUNT, "TELESCOPE_PARK_POSITION", {"PARK_HA": PARK_HA_H, "PARK_DEC": dec})
        got = get_numbers(indi.host, indi.port, MOUNT, "TELESCOPE_PARK_POSITION")
        if abs(got["PARK_HA"] - PARK_HA_H) > 1e-6 or abs(got["PARK_DEC"] - dec) > 1e-6:
            raise RuntimeError(f"{MOUNT} kept its park position {got}")
        if park:
            dev.mount.park(120)


def mount_parked(indi) -> bool:
    """The mount has finished parking: TELESCOPE_PARK says PARK and its state is Ok (while the park
    slew runs the switch already says PARK, with state Busy). Read from the server afresh."""
    import xml.etree.ElementTree as ET

    text = _read_definitions(indi.host, indi.port, MOUNT, 2.0)
    match = re.search(r"<defSwitchVector\b[^>]*name=\"TELESCOPE_PARK\".*?</defSwitchVector>", text, re.S)
    if match is None:
        raise RuntimeError(f"{MOUNT} has no TELESCOPE_PARK on {indi.host}:{indi.port}")
    elem = ET.fromstring(match.group(0))
    on = {e.get("name"): e.text.strip() == "On" for e in elem.findall("defSwitch")}
    return elem.get("state") == "Ok" and on.get("PARK", False)


def park_done(mount) -> bool:
    """The same from a connected Mount's snapshot (updated by callbacks: for timing)."""
    snap = mount.client.snapshot(mount.name, "TELESCOPE_PARK")
    return snap is not None and snap.state == "Ok" and bool(snap.values.get("PARK"))


def target_at_hour_angle(longitude: float, ha_hours: float, dec: float = LATITUDE,
                         when: float | None = None) -> tuple[float, float]:
    """J2000 (ra, dec) degrees whose JNow hour angle, seen from ``longitude`` (east) at ``when``
    (epoch s; now), is ``ha_hours`` by indisync's own sidereal time (indisync.night.meridian)."""
    import time

    from ..astro.coords import jnow_to_j2000, use_offline_iers
    from ..night.meridian import local_sidereal_deg

    use_offline_iers()
    when = time.time() if when is None else when
    ra_now = (local_sidereal_deg(longitude, when) - ha_hours * 15.0) % 360.0
    return jnow_to_j2000(ra_now, dec)


def pier_side(indi) -> str | None:
    """The Telescope Simulator's TELESCOPE_PIER_SIDE read from the server afresh: "east", "west" or None."""
    from .indi import get_switches

    on = [k for k, v in get_switches(indi.host, indi.port, MOUNT, "TELESCOPE_PIER_SIDE").items() if v]
    return {"PIER_EAST": "east", "PIER_WEST": "west"}.get(on[0]) if len(on) == 1 else None


# ---- the dome, the site, raw switch states: for the night's safety tests ------------------------
DOME = "Dome Simulator"


def switch_vector(indi, device: str, prop: str) -> tuple[str, dict[str, bool]] | None:
    """(state, {switch: on}) of one switch vector read from the server afresh; None when the device
    does not define it now (driver stopped, or not connected yet)."""
    import xml.etree.ElementTree as ET

    text = _read_definitions(indi.host, indi.port, device, 2.0, prop)
    match = re.search(rf"<defSwitchVector\b[^>]*name=\"{re.escape(prop)}\".*?</defSwitchVector>", text, re.S)
    if match is None:
        return None
    elem = ET.fromstring(match.group(0))
    return elem.get("state"), {e.get("name"): e.text.strip() == "On" for e in elem.findall("defSwitch")}


def mount_parked_now(indi) -> bool:
    """As ``mount_parked``, but False (not an error) while the mount's driver is gone or disconnected,
    and state Idle counts as well as Ok: a PARK sent to a Telescope Simulator that is already parked
    leaves TELESCOPE_PARK at PARK with state Idle (parked, not moving). Busy (the park slew under way)
    and Alert (refused, aborted) do not."""
    got = switch_vector(indi, MOUNT, "TELESCOPE_PARK")
    return got is not None and got[0] in ("Ok", "Idle") and got[1].get("PARK", False)


def shutter_closed(indi) -> bool:
    """The dome's shutter has finished closing: DOME_SHUTTER says SHUTTER_CLOSE and its state is Ok
    (while it moves the switch already says where it goes, with state Busy). Read afresh."""
    got = switch_vector(indi, DOME, "DOME_SHUTTER")
    return got is not None and got[0] == "Ok" and got[1].get("SHUTTER_CLOSE", False)


def prepare_dome(indi) -> None:
    """The Dome Simulator connected, its park position at its current azimuth (read back), so that
    parking it turns nothing (as a roll-off roof's; its default park is a 20 s turn). It starts
    unparked with the shutter closed; opening or closing the shutter takes about 6 s."""
    from ..config import IndiConfig
    from ..devices.session import open_devices

    cfg = IndiConfig(host=indi.host, port=indi.port, dome=DOME)
    with open_devices(cfg, need=("dome",), want=()):
        az = get_numbers(indi.host, indi.port, DOME, "ABS_DOME_POSITION")["DOME_ABSOLUTE_POSITION"]
        set_number(indi.host, indi.port, DOME, "DOME_PARK_POSITION", {"PARK_AZ": az})
        got = get_numbers(indi.host, indi.port, DOME, "DOME_PARK_POSITION")["PARK_AZ"]
        if abs(got - az) > 1e-6:
            raise RuntimeError(f"{DOME} kept its park azimuth {got} instead of {az}")


def move_site(indi, longitude: float, latitude: float = LATITUDE) -> None:
    """Tell the simulated mount it stands at another longitude (read back): how a test makes it
    another time of day for the mount as well as for the config. The Telescope Simulator keeps its
    axes where they are (so its RA shifts with the sidereal time) and keeps tracking."""
    set_number(indi.host, indi.port, MOUNT, "GEOGRAPHIC_COORD",
               {"LAT": latitude, "LONG": longitude % 360.0, "ELEV": 0.0})
    got = get_numbers(indi.host, indi.port, MOUNT, "GEOGRAPHIC_COORD")
    if abs(got["LAT"] - latitude) > 1e-6 or abs(got["LONG"] - longitude % 360.0) > 1e-6:
        raise RuntimeError(f"{MOUNT} kept its site {got}")
