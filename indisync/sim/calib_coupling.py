"""The simulator rig's twilight sky and light panel (tests, benchmarks and the demo only).

INDI 1.9.9's CCD Simulator draws a FLAT frame from ``SIMULATOR_SETTINGS.SIM_SKYGLOW`` alone (with a
telescope connected on its server): the mean ADU is linear in the exposure and halves for every +10
of SIM_SKYGLOW (at 50 a 1 s flat is ~32,240 ADU). It knows nothing of twilight, of the filter in
front of it or of a light panel, so ``SkyCoupling`` plays the sky: on one node's indiserver it sets
SIM_SKYGLOW (read back) about once a second, and at once when the wheel or the panel changes:

- the Light Panel Simulator ON: the panel's light, flux proportional to FLAT_LIGHT_INTENSITY
  (``panel_full`` at 255, +10 for every halving of the intensity);
- else inside a twilight (``Twilight``): ``m0 + 10 * t / halving_s`` at dusk (the sky halves in
  brightness every halving_s), minus at dawn;
- else the night's value (19.5 by default, which LIGHT frames need: SIM_SKYGLOW is their sky
  background too; a flat then would be white).

The simulator draws a FLAT with the SIM_SKYGLOW it has when the exposure starts (measured), so a
frame's flux is the sky's at its start; with exposures of seconds and a sky halving in minutes the
difference from a real sky's integral is under 1 %. A node that exposes the moment its panel or wheel
reads back would race this coupling's own connection; the sim rig therefore connects its nodes through
an ExposureGate (indisync.sim.calib_gate), which feeds the coupling what the node sees and holds each
exposure until ``sync()`` has the sky right.

Both sky and panel add the filter's offset (the wheel's FILTER_SLOT -> FILTER_NAME -> ``filter_offsets``,
narrowband needs more light). Product code never does any of this: a real sky darkens on its own.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from .indi_watch import IndiWatcher, vector_update

# SIM_SKYGLOW per filter name (case-insensitive) added to the sky's: +10 = half the light.
DEFAULT_FILTER_OFFSETS = {
    "l": 0.0, "lum": 0.0, "luminance": 0.0, "clear": 0.0,
    "r": 5.0, "red": 5.0, "g": 5.0, "green": 5.0, "b": 7.0, "blue": 7.0,
    "ha": 25.0, "h_alpha": 25.0, "halpha": 25.0, "oiii": 27.0, "o_iii": 27.0, "sii": 27.0, "s_ii": 27.0,
}
PANEL_DEVICE = "Light Panel Simulator"  # indi_simulator_lightpanel's device
NIGHT_SKYGLOW = 19.5  # the CCD Simulator's default: LIGHT frames' sky background
DARK_PANEL = 300.0  # a panel ON at intensity 0: no light to speak of
ADU_PER_S_AT_50 = 32240.0  # measured: a 1 s FLAT at SIM_SKYGLOW 50 (INDI 1.9.9, SIM_MAXVAL 65000)


def flat_rate(skyglow: float) -> float:
    """The CCD Simulator's FLAT mean ADU per second at ``skyglow`` (measured, unsaturated)."""
    return ADU_PER_S_AT_50 * 2.0 ** (-(skyglow - 50.0) / 10.0)


def skyglow_for_rate(adu_per_s: float) -> float:
    return 50.0 - 10.0 * math.log2(adu_per_s / ADU_PER_S_AT_50)


@dataclass(frozen=True)
class Twilight:
    """One twilight of the simulated sky: from ``start`` (epoch s) for ``duration_s`` (None: on and on),
    SIM_SKYGLOW ``m0`` at the start, changing by 10 every ``halving_s`` (dusk: darker; dawn: brighter)."""

    direction: str = "dusk"
    start: float = 0.0
    m0: float = 50.0
    halving_s: float = 180.0
    duration_s: float | None = None

    def __post_init__(self):
        if self.direction not in ("dusk", "dawn"):
            raise ValueError(f"direction must be dusk or dawn, got {self.direction!r}")
        if not self.halving_s > 0:
            raise ValueError(f"halving_s must be > 0, got {self.halving_s}")

    @classmethod
    def now(cls, direction: str = "dusk", m0: float = 50.0, halving_s: float = 180.0,
            duration_s: float | None = None) -> "Twilight":
        return cls(direction, time.time(), m0, halving_s, duration_s)

    def skyglow(self, t: float) -> float | None:
        """The sky's SIM_SKYGLOW (clear filter) at epoch ``t``; None outside this twilight."""
        dt = t - self.start
        if dt < 0 or (self.duration_s is not None and dt > self.duration_s):
            return None
        sign = 1.0 if self.direction == "dusk" else -1.0
        return self.m0 + sign * 10.0 * dt / self.halving_s

    def rate(self, t: float, offset: float = 0.0) -> float | None:
        """The FLAT ADU/s the simulator gives at ``t`` behind a filter of ``offset``."""
        m = self.skyglow(t)
        return None if m is None else flat_rate(m + offset)


def has_panel(light_panels, node: str) -> bool:
    """Whether a sim rig's node has a Light Panel Simulator: ``light_panels`` True (every node), or
    the names of the nodes that have one."""
    if isinstance(light_panels, bool):
        return light_panels
    if isinstance(light_panels, str):
        raise TypeError(f"light_panels must be True/False or a tuple of node names, not the string {light_panels!r}")
    return node in light_panels


def filter_offset(name: str | None, offsets: dict[str, float]) -> float:
    if not name:
        return 0.0
    return float(offsets.get(name.strip().lower(), 0.0))


class SkyCoupling(IndiWatcher):
    """A node's twilight sky and light panel on its CCD Simulator (see the module's docstring).

    One raw XML connection of its own to the node's indiserver: it watches the wheel (FILTER_SLOT,
    FILTER_NAME), the panel (FLAT_LIGHT_CONTROL, FLAT_LIGHT_INTENSITY) and the camera's
    SIMULATOR_SETTINGS, and sends SIM_SKYGLOW on the same connection; a value counts as set only once
    the camera's update reads it back (within ``set_timeout``, else the error is kept and it is sent
    again). The thread (indisync.sim.indi_watch) never dies silently: errors are logged and kept in
    ``errors``; a lost connection (indiserver restarted) is retried every ``retry_s`` until closed.
    """

    def __init__(self, host: str, port: int, twilight: Twilight | None = None, *,
                 camera: str = "CCD Simulator", wheel: str | None = "Filter Simulator",
                 panel: str | None = PANEL_DEVICE, filter_offsets: dict[str, float] | None = None,
                 night_skyglow: float = NIGHT_SKYGLOW, panel_full: float = 45.0, period_s: float = 1.0,
                 tolerance: float = 0.05, set_timeout: float = 3.0, retry_s: float = 0.5):
        # the lock is re-entrant: a wait's predicate may ask for wanted() under it
        super().__init__(host, port, label="sky coupling", retry_s=retry_s, join_s=set_timeout + 3.0)
        self.camera, self.wheel, self.panel = camera, wheel, panel
        self.filter_offsets = {k.lower(): v for k, v in (filter_offsets or DEFAULT_FILTER_OFFSETS).items()}
        self.night_skyglow, self.panel_full, self.period_s = night_skyglow, panel_full, period_s
        self.tolerance, self.set_timeout = tolerance, set_timeout
        self._twilight = twilight
        self._wake = threading.Event()
        self._next_tick = 0.0  # monotonic: when the wanted value is compared again without news
        # what the watch has seen
        self.slot: int | None = None
        self.filter_names: list[str] = []
        self.panel_on = False
        self.intensity: float = 0.0
        self.skyglow: float | None = None  # the camera's SIM_SKYGLOW as last read back
        self.source = "night"  # what the last value sent stood for: night | twilight | panel
        self.sets = 0
        self._sent: tuple[float, float] | None = None  # (value, monotonic time) awaiting its read-back
        self._sock: socket.socket | None = None  # the watch connection, while it is up
        self._send_lock = threading.Lock()
        # True once an ExposureGate (indisync.sim.calib_gate) feeds the wheel and panel updates the node
        # sees: this connection's own copies of them then arrive in a different order and are ignored
        self.gated = False

    # ---- control -----------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        super().close()

    @property
    def twilight(self) -> Twilight | None:
        return self._twilight

    def set_twilight(self, twilight: Twilight | None) -> None:
        """Begin (or end, None) a twilight now; the camera follows within a moment."""
        self._twilight = twilight
        self._wake.set()

    @property
    def filter_name(self) -> str | None:
        with self._lock:
            if self.slot is None or not 1 <= self.slot <= len(self.filter_names):
                return None
            return self.filter_names[self.slot - 1]

    def wanted(self, t: float | None = None) -> tuple[float, str]:
        """The SIM_SKYGLOW the camera should have at ``t`` (now) and what it stands for."""
        t = time.time() if t is None else t
        offset = filter_offset(self.filter_name, self.filter_offsets)
        if self.panel_on:
            if self.intensity <= 0:
                return DARK_PANEL, "panel"
            return self.panel_full - 10.0 * math.log2(self.intensity / 255.0) + offset, "panel"
        twilight = self._twilight
        m = twilight.skyglow(t) if twilight is not None else None
        if m is not None:
            return min(max(m + offset, 0.0), 6000.0), "twilight"
        return self.night_skyglow, "night"

    def wait_skyglow(self, predicate, timeout: float, what: str = "") -> float:
        """Wait until ``predicate(skyglow read back)`` holds; returns it. TimeoutError (with the
        coupling's errors) otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.skyglow is None or not predicate(self.skyglow):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise TimeoutError(f"SIM_SKYGLOW is {self.skyglow}, not {what or 'as wanted'} after {timeout:g} s "
                                       f"(source {self.source}, filter {self.filter_name}, panel "
                                       f"{'on' if self.panel_on else 'off'} {self.intensity:g}); "
                                       f"errors: {self.errors[-3:]}")
                self._changed.wait(min(left, 0.2))
            return self.skyglow

    def wait_settled(self, timeout: float = 10.0) -> float:
        """Wait until the camera reads back what is wanted now (within tolerance, plus the twilight's
        drift over one period: the value is renewed about once a period)."""
        def near(value: float) -> bool:
            want, source = self.wanted()
            twilight = self._twilight
            drift = 10.0 * (self.period_s + 0.5) / twilight.halving_s if source == "twilight" and twilight else 0.0
            return abs(value - want) <= self.tolerance + drift
        return self.wait_skyglow(near, timeout, "the wanted value")

    # ---- the thread --------------------------------------------------------------------------
    def sync(self, timeout: float | None = None) -> bool:
        """Make the camera's SIM_SKYGLOW what is wanted now, read back, before an exposure starts
        (the ExposureGate calls it: the simulator draws a flat with the value of the exposure's start).
        False (the error kept) when it is not read back within ``timeout`` (set_timeout)."""
        timeout = self.set_timeout if timeout is None else timeout
        want, source = self.wanted()
        self.source = source
        with self._lock:
            if self.skyglow is not None and abs(self.skyglow - want) <= self.tolerance:
                return True
        if not self._send(want):
            self._error(f"no connection to {self.host}:{self.port}: SIM_SKYGLOW {want:.3f} not set before an exposure")
            return False
        try:
            self.wait_skyglow(lambda v: abs(v - want) <= self.tolerance, timeout, f"{want:.3f}")
            return True
        except TimeoutError as exc:
            self._error(f"before an exposure: {exc}")
            return False

    def take(self, elem, gate: bool = False) -> None:
        """One def/set vector the node is about to see (from an ExposureGate: ``gate``)."""
        update = vector_update(elem)
        if update is not None:
            self._update(*update, gate=gate)

    def _send(self, value: float) -> bool:
        with self._send_lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.sendall(f"<newNumberVector device={quoteattr(self.camera)} name=\"SIMULATOR_SETTINGS\">"
                             f"<oneNumber name=\"SIM_SKYGLOW\">{value!r}</oneNumber></newNumberVector>\n".encode())
            except OSError:
                return False
        with self._lock:
            self._sent = (value, time.monotonic())
        return True

    def _asks(self) -> list[tuple[str, str | None]]:
        asks: list[tuple[str, str | None]] = [(self.camera, "SIMULATOR_SETTINGS")]
        if self.wheel:
            asks += [(self.wheel, "FILTER_SLOT"), (self.wheel, "FILTER_NAME")]
        if self.panel:
            asks += [(self.panel, "FLAT_LIGHT_CONTROL"), (self.panel, "FLAT_LIGHT_INTENSITY")]
        return asks

    def _connected(self, sock: socket.socket) -> None:
        with self._changed:
            self.skyglow = None  # a restarted server's simulators start afresh
            self._sent = None
        self._next_tick = 0.0
        with self._send_lock:
            self._sock = sock

    def _disconnected(self) -> None:
        with self._send_lock:
            self._sock = None

    def _polled(self, got_data: bool) -> None:
        now = time.monotonic()
        if self._wake.is_set() or now >= self._next_tick or got_data:
            self._wake.clear()
            self._apply()
            self._next_tick = now + self.period_s

    def _update(self, device: str, name: str, values: dict[str, str], gate: bool = False) -> None:
        """One def/set vector (from the stream, or the gate's copy): keep what it says."""
        if device in (self.wheel, self.panel) and self.gated and not gate:
            return  # the gate's copy, in the node's order, counts
        with self._changed:
            if device == self.camera and name == "SIMULATOR_SETTINGS" and "SIM_SKYGLOW" in values:
                self.skyglow = float(values["SIM_SKYGLOW"])
                if self._sent is not None and abs(self.skyglow - self._sent[0]) <= self.tolerance:
                    self._sent = None
                    self.sets += 1
                self._changed.notify_all()
            elif device == self.wheel and name == "FILTER_SLOT" and values:
                self.slot = int(round(float(next(iter(values.values())))))
            elif device == self.wheel and name == "FILTER_NAME":
                self.filter_names = list(values.values())
            elif device == self.panel and name == "FLAT_LIGHT_CONTROL":
                self.panel_on = values.get("FLAT_LIGHT_ON") == "On"
            elif device == self.panel and name == "FLAT_LIGHT_INTENSITY" and values:
                self.intensity = float(next(iter(values.values())))

    def _apply(self) -> None:
        """Send the wanted SIM_SKYGLOW when the camera's differs (and nothing sent awaits its read-back)."""
        want, source = self.wanted()
        self.source = source
        with self._lock:
            have, sent = self.skyglow, self._sent
        if have is None:
            return  # the camera's settings not seen yet: nothing to compare with
        if sent is not None:
            if time.monotonic() - sent[1] < self.set_timeout:
                if abs(sent[0] - want) <= self.tolerance:
                    return  # on its way
            else:
                self._error(f"{self.camera} kept SIM_SKYGLOW {have} instead of {sent[0]:.3f} for "
                            f"{self.set_timeout:g} s; sending it again")
        elif abs(have - want) <= self.tolerance:
            return
        self._send(want)


def longitude_for_sun(altitude: float, direction: str = "dusk", latitude: float = 45.0,
                      when: float | None = None) -> float:
    """East longitude (-180..180) where the sun stands at ``altitude`` now (``when``, epoch s) at
    ``latitude``, setting (dusk) or rising (dawn): how a test makes it twilight whatever the clock says.
    ValueError where the sun never reaches that altitude at this latitude today (polar day/night)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    from ..astro.site import use_offline_iers

    if direction not in ("dusk", "dawn"):
        raise ValueError(f"direction must be dusk or dawn, got {direction!r}")
    use_offline_iers()
    t = Time(time.time() if when is None else when, format="unix")
    sun = get_body("sun", t)
    ra, dec = float(sun.ra.to_value(u.deg)), float(sun.dec.to_value(u.deg))
    phi, d, h = (math.radians(v) for v in (latitude, dec, altitude))
    cos_ha = (math.sin(h) - math.sin(phi) * math.sin(d)) / (math.cos(phi) * math.cos(d))
    if not -1.0 <= cos_ha <= 1.0:
        raise ValueError(f"the sun does not reach {altitude} deg at latitude {latitude} today")
    ha = math.degrees(math.acos(cos_ha)) * (1.0 if direction == "dusk" else -1.0)  # west of the meridian at dusk
    gast = float(t.sidereal_time("apparent", longitude=0.0).to_value(u.deg))
    lon = ((ha + ra - gast) + 540.0) % 360.0 - 180.0
    for _ in range(3):  # refine on astropy's own altitude (refraction aside, the formula is off by the parallax)
        site = EarthLocation.from_geodetic(lon=lon * u.deg, lat=latitude * u.deg, height=0 * u.m)
        got = float(sun.transform_to(AltAz(obstime=t, location=site)).alt.to_value(u.deg))
        if abs(got - altitude) < 0.01:
            break
        slope = -math.cos(phi) * math.cos(d) * math.sin(math.radians(ha)) / math.cos(math.radians(got))
        step = (altitude - got) / slope  # deg of hour angle; hour angle grows with longitude
        ha += step
        lon = ((lon + step) + 540.0) % 360.0 - 180.0
    return lon
