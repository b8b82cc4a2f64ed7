"""The mount: park, tracking, site, J2000 slews and syncs, pier side, and timed guide pulses.

The mount's EQUATORIAL_EOD_COORD is JNow (RA in hours, Dec in degrees); everything public here
that says ``j2000`` takes or gives J2000 degrees and converts through ``indisync.astro.coords``,
imported inside the methods only (``indisync filters``/``status`` must not load astropy).

Every motion is bounded: a slew that does not end within its timeout (or ends in Alert) stops the
mount (TELESCOPE_ABORT_MOTION) and raises DeviceError, so a night never hangs on a mount.
Every setting is read back after the driver's answer: an Ok that did not take is an error.

The class does what it is asked and nothing more: a slew or goto on a parked mount is an error, never
an unpark of its own (whoever owns the mount's motion unparks it). A slew given ``cancel`` (see
props.py) stops its own goto (TELESCOPE_ABORT_MOTION) when cancelled and raises ActionCancelled; a park
is never cancellable.
"""

from __future__ import annotations

import logging
import time

from ..errors import ActionCancelled, DeviceError, PropertyTimeout
from .device import IndiDevice
from .props import Cancel, check_cancel, last_message, set_number, set_switch, switch_to, wait_answer

log = logging.getLogger(__name__)

PULSE = {"N": ("TELESCOPE_TIMED_GUIDE_NS", "TIMED_GUIDE_N"), "S": ("TELESCOPE_TIMED_GUIDE_NS", "TIMED_GUIDE_S"),
         "E": ("TELESCOPE_TIMED_GUIDE_WE", "TIMED_GUIDE_E"), "W": ("TELESCOPE_TIMED_GUIDE_WE", "TIMED_GUIDE_W")}
PIER_SIDES = {"PIER_EAST": "east", "PIER_WEST": "west"}
OPPOSITE = {"N": "S", "S": "N", "E": "W", "W": "E"}
SLEW_START_GRACE_S = 3.0  # a goto answered Ok this soon but far from the target may not have started yet



def send_guide_pulse(client, device: str, direction: str, ms: int, property_timeout: float,
                     wait: bool = True) -> None:
    """A timed guide pulse (``TELESCOPE_TIMED_GUIDE_NS/WE``) to ``device``: the mount or a camera's ST4 port."""
    if direction not in PULSE:
        raise DeviceError(f"unknown guide direction {direction!r}; allowed: N, S, E, W")
    if ms <= 0:
        return
    prop, elem = PULSE[direction]
    # The opposite direction goes out as 0 explicitly: drivers that answer at once (the Guide
    # Simulator's ST4 port) keep the last pulse in the property, and with both set INDI runs North
    # or West, so an East pulse after a West one went West.
    set_number(client, device, prop, {elem: int(ms), PULSE[OPPOSITE[direction]][1]: 0},
               property_timeout + ms / 1000.0, wait=wait)

class Mount(IndiDevice):
    key_properties = ("EQUATORIAL_EOD_COORD",)

    @property
    def coordinates(self) -> tuple[float, float]:
        """(RA in hours, DEC in degrees), JNow."""
        snap = self.client.wait_property(self.name, "EQUATORIAL_EOD_COORD", self.property_timeout)
        return snap.values["RA"], snap.values["DEC"]

    @property
    def guide_rate(self) -> tuple[float, float] | None:
        """(RA, DEC) guide rates as fractions of sidereal, when the mount reports them."""
        snap = self.client.snapshot(self.name, "GUIDE_RATE")
        return None if snap is None else (snap.values.get("GUIDE_RATE_WE"), snap.values.get("GUIDE_RATE_NS"))

    @property
    def focal_length_mm(self) -> float | None:
        snap = self.client.snapshot(self.name, "TELESCOPE_INFO")
        return None if snap is None else snap.values.get("TELESCOPE_FOCAL_LENGTH")

    def pulse_guide(self, direction: str, ms: int, wait: bool = True) -> None:
        """Pulse the mount at guide rate for ``ms`` milliseconds; waits for the pulse to end."""
        send_guide_pulse(self.client, self.name, direction, ms, self.property_timeout, wait=wait)

    # ---- park ---------------------------------------------------------------------------------
    @property
    def parked(self) -> bool | None:
        """True/False from TELESCOPE_PARK; None when the mount cannot park."""
        snap = self.client.snapshot(self.name, "TELESCOPE_PARK")
        return None if snap is None else bool(snap.values.get("PARK"))

    def park(self, timeout: float | None = None) -> None:
        """Park and wait until the mount says it is parked (read back); DeviceError otherwise."""
        self._park_switch("PARK", timeout)

    def unpark(self, timeout: float | None = None, cancel: Cancel | None = None) -> None:
        """Unpark (a no-op when not parked) and read it back; ActionCancelled when ``cancel`` is set
        before the request goes out or while waiting for the answer."""
        snap = self._park_snapshot()
        if snap is None or not snap.values.get("PARK"):
            return
        self._park_switch("UNPARK", timeout, cancel)

    def _park_snapshot(self):
        """TELESCOPE_PARK, waited for a little (a fresh connection may not have seen it yet); None
        for a mount that cannot park."""
        snap = self.client.snapshot(self.name, "TELESCOPE_PARK")
        if snap is None:
            try:
                snap = self.client.wait_property(self.name, "TELESCOPE_PARK", min(self.property_timeout, 3.0))
            except PropertyTimeout:
                return None
        return snap

    def _refuse_if_parked(self) -> None:
        snap = self._park_snapshot()
        if snap is not None and snap.values.get("PARK"):
            raise DeviceError(f"{self.name} is parked: unpark it first (the night unparks through its motion "
                              "arbiter; in a script call mount.unpark())")

    def _park_switch(self, which: str, timeout: float | None, cancel: Cancel | None = None) -> None:
        timeout = self.move_timeout if timeout is None else timeout
        self.client.wait_property(self.name, "TELESCOPE_PARK", self.property_timeout)
        try:
            set_switch(self.client, self.name, "TELESCOPE_PARK", [which], timeout, cancel=cancel)
        except PropertyTimeout:
            if which == "PARK":
                self.abort_motion()
            raise DeviceError(f"{self.name}: {which.lower()} did not finish within {timeout:g} s; motion "
                              "aborted. Check the mount, or raise the park timeout") from None
        if self.parked is not (which == "PARK"):
            raise DeviceError(f"{self.name} answered {which} but TELESCOPE_PARK still says "
                              f"{'parked' if self.parked else 'unparked'}: {last_message(self.client, self.name)}")

    # ---- tracking -----------------------------------------------------------------------------
    @property
    def tracking(self) -> bool | None:
        snap = self.client.snapshot(self.name, "TELESCOPE_TRACK_STATE")
        return None if snap is None else bool(snap.values.get("TRACK_ON"))

    def set_tracking(self, on: bool, cancel: Cancel | None = None) -> None:
        snap = self.client.wait_property(self.name, "TELESCOPE_TRACK_STATE", self.property_timeout)
        if bool(snap.values.get("TRACK_ON")) == on and snap.state != "Alert":
            return
        # INDI keeps TELESCOPE_TRACK_STATE Busy for as long as the mount tracks: wait for the switch
        # itself to read back, not for the end of Busy.
        switch_to(self.client, self.name, "TELESCOPE_TRACK_STATE", "TRACK_ON" if on else "TRACK_OFF",
                  self.property_timeout, cancel=cancel)
        if self.tracking is not on:
            raise DeviceError(f"{self.name} did not turn tracking {'on' if on else 'off'}: "
                              f"{last_message(self.client, self.name) or 'no message from the driver'}")

    # ---- coordinates in J2000 ---------------------------------------------------------------
    def position_j2000(self) -> tuple[float, float]:
        """Where the mount points, (RA, Dec) J2000 in degrees."""
        from ..astro.coords import jnow_to_j2000

        ra_hours, dec = self.coordinates
        return jnow_to_j2000(ra_hours * 15.0, dec)

    def slew_j2000(self, ra_deg: float, dec_deg: float, timeout: float, tolerance_arcsec: float = 120.0,
                   cancel: Cancel | None = None) -> None:
        """Slew to J2000 (RA, Dec) degrees and track there. A parked mount is an error (DeviceError):
        this never unparks on its own.

        Returns when EQUATORIAL_EOD_COORD is Ok again (the slew has ended) and reads where the mount
        says it is: farther than ``tolerance_arcsec`` from the target is an error too (a goto refused
        by the mount's limits can end Ok). On Alert, on the timeout, or if the driver vanishes: abort
        the motion and raise DeviceError. Never waits longer.

        ``cancel`` (anything with ``is_set()``) is looked at before every request to the mount and
        every 0.1 s while the goto runs: set, nothing more is sent, a goto of ours already under way
        is aborted (TELESCOPE_ABORT_MOTION), and ActionCancelled is raised. TELESCOPE_PARK is not touched.
        """
        from ..astro.coords import j2000_to_jnow, separation_arcsec

        what = f"{self.name}: slew to RA {ra_deg:.4f} Dec {dec_deg:+.4f} (J2000)"
        ra_now, dec_now = j2000_to_jnow(ra_deg, dec_deg)
        started = time.monotonic()
        check_cancel(cancel, what)
        self._refuse_if_parked()
        try:
            self._set_coord_mode("TRACK", cancel)
            if self.tracking is False:
                # Slewing an untracked mount, the Telescope Simulator lands off by the sidereal drift of
                # the slew's duration (seen: 51" after 3.4 s); a real mount tracks during a goto anyway.
                self.set_tracking(True, cancel=cancel)
        except ActionCancelled:
            raise ActionCancelled(f"{what} cancelled before the goto was sent") from None
        left = max(1.0, timeout - (time.monotonic() - started))
        in_flight = False
        try:
            # Ask with wait=False and wait here, so that the abort below covers every way out.
            before = self.client.generation()
            sent = time.monotonic()
            set_number(self.client, self.name, "EQUATORIAL_EOD_COORD", {"RA": (ra_now / 15.0) % 24.0, "DEC": dec_now},
                       self.property_timeout, wait=False, cancel=cancel)
            in_flight = True
            wait_answer(self.client, self.name, "EQUATORIAL_EOD_COORD", before, left, cancel)
            ra_hours, dec = self.coordinates
            off = separation_arcsec(ra_now, dec_now, ra_hours * 15.0, dec)
            # A tracking mount re-sends EQUATORIAL_EOD_COORD (Ok) every poll: one of those can land
            # between our request and the driver's Busy and pass for the answer (seen once: "ended
            # 298870\" from the target" 8 ms after the request). Within a short grace, wait for the next.
            while off > tolerance_arcsec and time.monotonic() - sent < SLEW_START_GRACE_S:
                before = self.client.generation()
                wait_answer(self.client, self.name, "EQUATORIAL_EOD_COORD", before,
                            max(1.0, timeout - (time.monotonic() - started)), cancel)
                ra_hours, dec = self.coordinates
                off = separation_arcsec(ra_now, dec_now, ra_hours * 15.0, dec)
        except ActionCancelled:
            if not in_flight:
                raise ActionCancelled(f"{what} cancelled before the goto was sent") from None
            self._abort_quietly()  # our own goto is under way: stop it (a park is not ours to stop)
            raise ActionCancelled(f"{what} cancelled after {time.monotonic() - started:.1f} s; "
                                  "motion aborted") from None
        except DeviceError as exc:
            self._abort_quietly()
            raise DeviceError(f"{self.name}: slew to RA {ra_deg:.4f} Dec {dec_deg:+.4f} (J2000) failed, motion "
                              f"aborted: {exc}") from None
        if off > tolerance_arcsec:
            raise DeviceError(f"{self.name}: the slew to RA {ra_deg:.4f} Dec {dec_deg:+.4f} (J2000) ended {off:.0f}\" "
                              f"from the target (allowed {tolerance_arcsec:g}\"): "
                              f"{last_message(self.client, self.name) or 'no message from the driver'}")
        log.info("%s slewed to RA %.4f Dec %+.4f (J2000) in %.1f s", self.name, ra_deg, dec_deg,
                 time.monotonic() - started)

    def sync_j2000(self, ra_deg: float, dec_deg: float) -> None:
        """Tell the mount it points at J2000 (RA, Dec) degrees (after a plate solve)."""
        from ..astro.coords import j2000_to_jnow

        ra_now, dec_now = j2000_to_jnow(ra_deg, dec_deg)
        self._set_coord_mode("SYNC")
        try:
            set_number(self.client, self.name, "EQUATORIAL_EOD_COORD", {"RA": (ra_now / 15.0) % 24.0, "DEC": dec_now},
                       self.property_timeout)
        finally:
            self._set_coord_mode("TRACK")  # a later goto must not become a sync

    def _set_coord_mode(self, mode: str, cancel: Cancel | None = None) -> None:
        snap = self.client.wait_property(self.name, "ON_COORD_SET", self.property_timeout)
        if not snap.values.get(mode):
            set_switch(self.client, self.name, "ON_COORD_SET", [mode], self.property_timeout, cancel=cancel)
            snap = self.client.snapshot(self.name, "ON_COORD_SET")
            if snap is None or not snap.values.get(mode):
                raise DeviceError(f"{self.name} did not take ON_COORD_SET={mode}")

    @property
    def pier_side(self) -> str | None:
        """"east" or "west" from TELESCOPE_PIER_SIDE; None when the mount does not say.

        INDI's convention (seen on the Telescope Simulator after gotos at hour angle -1 h and +1 h):
        pointing east of the meridian the tube is on the pier's west side ("west"), pointing west of
        it "east". The simulator flips between them on a goto across the meridian (a long slew)."""
        snap = self.client.snapshot(self.name, "TELESCOPE_PIER_SIDE")
        if snap is None:
            return None
        sides = [PIER_SIDES[e] for e, on in snap.values.items() if on and e in PIER_SIDES]
        return sides[0] if len(sides) == 1 else None

    def abort_motion(self) -> None:
        """Stop any slew or park now (TELESCOPE_ABORT_MOTION) and wait for the driver's answer."""
        set_switch(self.client, self.name, "TELESCOPE_ABORT_MOTION", ["ABORT"], self.property_timeout)

    def _abort_quietly(self) -> None:
        try:
            self.abort_motion()
        except DeviceError as exc:
            log.error("%s: could not abort the motion: %s", self.name, exc)

    # ---- site -----------------------------------------------------------------------------------
    def site(self) -> tuple[float, float, float] | None:
        """(latitude deg, longitude deg east in -180..180, elevation m), or None without GEOGRAPHIC_COORD."""
        snap = self.client.snapshot(self.name, "GEOGRAPHIC_COORD")
        if snap is None:
            return None
        lon = snap.values["LONG"]
        return snap.values["LAT"], (lon - 360.0 if lon > 180.0 else lon), snap.values["ELEV"]

    def set_site(self, lat: float, lon: float, elev: float) -> None:
        """Set the site (longitude east, -180..360) and read it back."""
        if not -90 <= lat <= 90 or not -180 <= lon <= 360:
            raise DeviceError(f"site latitude {lat} / longitude {lon} out of range (-90..90, -180..360 east)")
        set_number(self.client, self.name, "GEOGRAPHIC_COORD", {"LAT": lat, "LONG": lon % 360.0, "ELEV": elev},
                   self.property_timeout)
        got = self.site()
        want_lon = lon - 360.0 if lon > 180.0 else lon
        if got is None or abs(got[0] - lat) > 1e-4 or abs(((got[1] - want_lon) + 180) % 360 - 180) > 1e-4 \
                or abs(got[2] - elev) > 0.5:
            raise DeviceError(f"{self.name} kept site {got} instead of ({lat}, {lon}, {elev})")

    # ---- the old JNow goto (the guider tests and the rig point the mount with it) --------------
    def goto(self, ra_hours: float, dec_deg: float) -> None:
        """Slew to (RA, DEC) JNow and track there; waits until the slew ends. A parked mount is an
        error (DeviceError), never unparked here."""
        self._refuse_if_parked()
        set_switch(self.client, self.name, "ON_COORD_SET", ["TRACK"], self.property_timeout)
        set_number(self.client, self.name, "EQUATORIAL_EOD_COORD", {"RA": ra_hours, "DEC": dec_deg}, self.move_timeout)
