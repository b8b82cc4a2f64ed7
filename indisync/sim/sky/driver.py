"""The sky driver: "Sky Mount", "Sky Guider" and "Sky Camera" over INDI's driver XML on stdin/stdout.

``indiserver ... indi_sky_sim`` runs it (``indisync.sim.indi.IndiServer`` writes that executable
into its own bin/; by hand: ``python -m indisync.sim.sky``). One process holds one sky
(``model.Sky``) that the mount and both cameras share:

- **Sky Mount** speaks what INDI's Telescope Simulator does for us: EQUATORIAL_EOD_COORD (sent
  every poll, no deadband; it includes what the guide pulses moved the motors), ON_COORD_SET,
  TELESCOPE_ABORT_MOTION, TELESCOPE_PARK, TELESCOPE_TRACK_STATE, TELESCOPE_PIER_SIDE,
  TELESCOPE_TIMED_GUIDE_NS/WE, GUIDE_RATE, TELESCOPE_INFO, GEOGRAPHIC_COORD. Gotos move at a
  finite rate (SKY_SLEW.RATE deg/s per axis); the pier side follows the target's hour angle
  against a sidereal clock that starts at SKY_LST (no dependence on the time of day).
  The sky's parameters are properties (SKY_PE, SKY_DRIFT, SKY_SEEING, SKY_WIND, SKY_BACKLASH,
  SKY_SEED; SKY_PRESET loads a named sky and starts it afresh, SKY_RESET starts it afresh), and
  SKY_TRUE_ERROR publishes the true error every poll: for tests and benchmarks only, as
  SIM_FOCUSING is for the CCD Simulator.
- **Sky Guider** / **Sky Camera** (``camera.SkyCamera``) speak what the CCD Simulator does for us: CCD_EXPOSURE,
  CCD_ABORT_EXPOSURE, CCD1 (FITS), CCD_INFO, CCD_BINNING, CCD_FRAME, CCD_FRAME_TYPE, UPLOAD_MODE,
  CCD_TRANSFER_FORMAT, and an ST4 port (TELESCOPE_TIMED_GUIDE_NS/WE, into the same mount). Their
  rendering parameters are SKY_CAMERA_OPTICS, SKY_CAMERA_NOISE and SKY_CAMERA_FIELD. Each frame's
  header carries the truth of its exposure (TRUERA/TRUEDEC: the mount's mean error, SEEINGRA/
  SEEINGDE, TRUEDX/TRUEDY: the field's mean offset on the sensor in px).

One thread: a select() loop over stdin that wakes for the next poll, pulse end or exposure end.
A request that fails is answered Alert with the reason; an error in the loop itself is written to
stderr (indiserver's log) and ends the process with status 1 (indiserver restarts it).
"""

from __future__ import annotations

import math
import os
import select
import sys
import time
import traceback
from dataclasses import replace
from typing import Callable

from . import indixml as X
from .camera import CAMERA, RequestError, SkyCamera
from .model import PRESETS, Sky, SkyParams
from .render import CameraParams

MOUNT = "Sky Mount"
GUIDER = "Sky Guider"
DEVICES = (MOUNT, GUIDER, CAMERA)
SOLAR_TO_SIDEREAL = 1.00273790935
DEFAULT_LST = 3.0  # hours at driver start: RA 6h is then 3 h east of the meridian


def _wrap_hours(h: float) -> float:
    return (h + 12.0) % 24.0 - 12.0


# ---- the parameters as properties -------------------------------------------------------------
# property name -> [(element, SkyParams field, label, min, max, step)]
SKY_PROPS = {
    "SKY_PE": [("AMPLITUDE", "pe_amplitude", "Main term (RA axis arcsec)", 0, 600, 0.1),
               ("PERIOD", "pe_period", "Period (s)", 1, 3600, 1),
               ("H2", "pe_h2", "2nd harmonic (arcsec)", 0, 600, 0.1),
               ("H3", "pe_h3", "3rd harmonic (arcsec)", 0, 600, 0.1)],
    "SKY_DRIFT": [("RA", "drift_ra", "RA (arcsec/min)", -600, 600, 0.1),
                  ("DEC", "drift_dec", "Dec (arcsec/min)", -600, 600, 0.1)],
    "SKY_SEEING": [("FWHM", "seeing_fwhm", "FWHM (arcsec)", 0.1, 20, 0.1),
                   ("WANDER", "wander", "Wander RMS per axis (arcsec)", 0, 20, 0.05),
                   ("TAU", "wander_tau", "Wander correlation (s)", 0.01, 60, 0.01)],
    "SKY_WIND": [("RATE", "gust_rate", "Gusts per minute", 0, 600, 0.1),
                 ("AMPLITUDE", "gust_amplitude", "Largest push (arcsec)", 0, 600, 0.1),
                 ("DURATION", "gust_duration", "Duration (s)", 0.05, 60, 0.1)],
    "SKY_BACKLASH": [("DEC", "backlash_dec", "Dec backlash (arcsec)", 0, 3600, 0.5)],
    "SKY_SEED": [("SEED", "seed", "Random seed", 0, 2 ** 31 - 1, 1)],
}
TRUE_ERROR_ITEMS = [("TIME", "time"), ("RA", "ra"), ("DEC", "dec"), ("SEEING_RA", "seeing_ra"),
                    ("SEEING_DEC", "seeing_dec"), ("PE", "pe"), ("DRIFT_RA", "drift_ra"), ("DRIFT_DEC", "drift_dec"),
                    ("GUST_RA", "gust_ra"), ("GUST_DEC", "gust_dec"), ("GUIDE_RA", "guide_ra"),
                    ("GUIDE_DEC", "guide_dec"), ("UNGUIDED_RA", "unguided_ra"), ("UNGUIDED_DEC", "unguided_dec")]
INT_FIELDS = {"seed", "stars", "field_seed", "width", "height"}


class SkyDriver:
    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 sky: SkyParams | None = None):
        self.write = write
        self.clock = clock
        self.t0 = clock()  # sim time 0 of the sky
        self.sky = Sky(sky or PRESETS["calm"])
        self.props: dict[tuple[str, str], X.Vector] = {}
        self.connected = {d: False for d in DEVICES}
        self.poll_s = 0.1
        self.next_poll = clock()
        self.pulses: dict[tuple[str, str], float] = {}  # (device, prop) -> wall time it ends
        # the mount
        self.lst0, self.lst_at = DEFAULT_LST, clock()
        self.ra, self.dec = DEFAULT_LST, 90.0  # nominal pointing (hours, deg): parked at the pole
        self.field_ra, self.field_dec = self.ra, self.dec  # where the stars of the field are centred
        self.tracking, self.parked = False, True
        self.slew_to: tuple[float, float] | None = None
        self.slew_rate = 10.0  # deg/s per axis
        self.after_slew = "track"  # track | stop | park
        self.pier_east = False
        self.last_tick = clock()
        self.sky.dec = self.dec
        # the cameras
        self.cameras = {GUIDER: SkyCamera(self, GUIDER, CameraParams()),
                        CAMERA: SkyCamera(self, CAMERA, CameraParams(width=1600, height=1200, pixel_size=4.63,
                                                                   focal_length=1000.0, rotation=12.0))}
        self._define_mount()
        for cam in self.cameras.values():
            cam.define()

    # ---- plumbing -------------------------------------------------------------------------------

    def add(self, vector: X.Vector) -> X.Vector:
        self.props[(vector.device, vector.name)] = vector
        return vector

    def prop(self, device: str, name: str) -> X.Vector:
        return self.props[(device, name)]

    def send(self, vector: X.Vector, state: str | None = None, message: str | None = None) -> None:
        if state is not None:
            vector.state = state
        self.write(vector.set_xml(message))

    def sim_time(self, wall: float | None = None) -> float:
        return (self.clock() if wall is None else wall) - self.t0

    def lst(self, wall: float | None = None) -> float:
        wall = self.clock() if wall is None else wall
        return (self.lst0 + (wall - self.lst_at) * SOLAR_TO_SIDEREAL / 3600.0) % 24.0

    def _common(self, device: str) -> None:
        self.add(X.switch(device, "CONNECTION", "Connection", "Main Control",
                          [("CONNECT", "Connect", False), ("DISCONNECT", "Disconnect", True)]))
        self.add(X.text(device, "DRIVER_INFO", "Driver Info", "General Info",
                        [("DRIVER_NAME", "Name", "indisync sky"), ("DRIVER_EXEC", "Exec", "indi_sky_sim"),
                         ("DRIVER_VERSION", "Version", "1.0"), ("DRIVER_INTERFACE", "Interface",
                                                                "5" if device == MOUNT else "6")]))
        self.add(X.number(device, "POLLING_PERIOD", "Polling", "Options",
                          [("PERIOD_MS", "Period (ms)", 100, 10, 10000, 10)]))

    def _define_mount(self) -> None:
        d, g = MOUNT, "Main Control"
        self._common(d)
        self.add(X.number(d, "EQUATORIAL_EOD_COORD", "Eq. Coordinates", g,
                          [("RA", "RA (hh:mm:ss)", self.ra, 0, 24, 0, "%010.6m"),
                           ("DEC", "DEC (dd:mm:ss)", self.dec, -90, 90, 0, "%010.6m")]))
        self.add(X.switch(d, "ON_COORD_SET", "On Set", g,
                          [("TRACK", "Track", True), ("SLEW", "Slew", False), ("SYNC", "Sync", False)]))
        self.add(X.switch(d, "TELESCOPE_ABORT_MOTION", "Abort Motion", g, [("ABORT", "Abort", False)],
                          rule="AtMostOne"))
        self.add(X.switch(d, "TELESCOPE_PARK", "Parking", g, [("PARK", "Park", True), ("UNPARK", "UnPark", False)]))
        self.add(X.switch(d, "TELESCOPE_TRACK_STATE", "Tracking", g,
                          [("TRACK_ON", "On", False), ("TRACK_OFF", "Off", True)]))
        self.add(X.switch(d, "TELESCOPE_PIER_SIDE", "Pier Side", g,
                          [("PIER_WEST", "West (pointing east)", True), ("PIER_EAST", "East (pointing west)", False)],
                          perm="ro"))
        self._define_st4(d)
        self.add(X.number(d, "GUIDE_RATE", "Guiding Rate", "Motion Control",
                          [("GUIDE_RATE_WE", "W/E Rate", 0.5, 0.05, 1, 0.05),
                           ("GUIDE_RATE_NS", "N/S Rate", 0.5, 0.05, 1, 0.05)]))
        self.add(X.number(d, "TELESCOPE_INFO", "Scope Properties", "Options",
                          [("TELESCOPE_APERTURE", "Aperture (mm)", 200, 10, 5000, 1),
                           ("TELESCOPE_FOCAL_LENGTH", "Focal Length (mm)", 1000, 10, 20000, 1),
                           ("GUIDER_APERTURE", "Guider Aperture (mm)", 60, 10, 5000, 1),
                           ("GUIDER_FOCAL_LENGTH", "Guider Focal Length (mm)", 600, 10, 20000, 1)]))
        self.add(X.number(d, "GEOGRAPHIC_COORD", "Location", "Site Management",
                          [("LAT", "Lat (dd:mm:ss)", 45.0, -90, 90, 0, "%010.6m"),
                           ("LONG", "Lon (dd:mm:ss)", 10.0, 0, 360, 0, "%010.6m"),
                           ("ELEV", "Elevation (m)", 300.0, -200, 10000, 0)]))
        self.add(X.number(d, "SKY_LST", "Sidereal time", "Sky",
                          [("LST", "LST (hours, runs sidereal)", self.lst0, 0, 24, 0, "%010.6m")]))
        self.add(X.number(d, "SKY_SLEW", "Slew", "Sky", [("RATE", "Rate (deg/s per axis)", self.slew_rate, 0.1, 30, 0.1)]))
        for name, items in SKY_PROPS.items():
            self.add(X.number(d, name, name.replace("SKY_", "Sky ").title(), "Sky",
                              [(e, label, getattr(self.sky.params, f), lo, hi, st) for e, f, label, lo, hi, st in items]))
        self.add(X.switch(d, "SKY_PRESET", "Sky preset", "Sky",
                          [(n.upper(), n, n == "calm") for n in PRESETS], rule="AtMostOne"))
        self.add(X.switch(d, "SKY_RESET", "Start the sky afresh", "Sky", [("RESET", "Reset", False)], rule="AtMostOne"))
        self.add(X.number(d, "SKY_TRUE_ERROR", "True error (tests only)", "Sky",
                          [(e, e.title() + (" (s)" if e == "TIME" else " (arcsec on the sky)"), 0.0, -1e9, 1e9, 0)
                           for e, _ in TRUE_ERROR_ITEMS], perm="ro"))

    def _define_st4(self, device: str) -> None:
        self.add(X.number(device, "TELESCOPE_TIMED_GUIDE_NS", "Guide N/S", "Guide",
                          [("TIMED_GUIDE_N", "North (ms)", 0, 0, 60000, 1), ("TIMED_GUIDE_S", "South (ms)", 0, 0, 60000, 1)]))
        self.add(X.number(device, "TELESCOPE_TIMED_GUIDE_WE", "Guide W/E", "Guide",
                          [("TIMED_GUIDE_W", "West (ms)", 0, 0, 60000, 1), ("TIMED_GUIDE_E", "East (ms)", 0, 0, 60000, 1)]))

    # ---- requests -------------------------------------------------------------------------------

    def handle(self, req: X.Request) -> None:
        if req.tag == "getProperties":
            if req.device is not None and req.device not in DEVICES:
                return
            for (device, name), vector in self.props.items():
                if (req.device is None or req.device == device) and (req.name is None or req.name == name):
                    self._refresh(vector)
                    self.write(vector.def_xml())
            return
        if req.device not in DEVICES:
            return  # another driver's device: indiserver sends us only ours, but be sure
        if (req.device, req.name) not in self.props:
            self.write(X.message_xml(req.device, f"{req.device} has no property {req.name}; it has "
                                     f"{', '.join(n for d, n in self.props if d == req.device)}"))
            return
        vector = self.prop(req.device, req.name)
        try:
            values = self._parse(vector, req)
            if vector.perm == "ro":
                raise RequestError(f"{req.name} is read-only")
            self.advance()
            if req.device == MOUNT:
                self._mount_request(vector, values)
            else:
                self.cameras[req.device].request(vector, values)
        except RequestError as exc:
            self.send(vector, "Alert", f"{req.device}: {exc}")
        except Exception as exc:  # noqa: BLE001 - answered and logged, the driver goes on
            traceback.print_exc(file=sys.stderr)
            self.send(vector, "Alert", f"{req.device}: internal error on {req.name}: {exc}")

    def _parse(self, vector: X.Vector, req: X.Request) -> dict:
        unknown = [k for k in req.values if k not in vector.elements]
        if unknown:
            raise RequestError(f"{vector.name} has no element(s) {', '.join(unknown)}")
        if vector.kind == "Number":
            out = {}
            for k, text in req.values.items():
                try:
                    v = float(text)
                except ValueError:
                    raise RequestError(f"{vector.name}.{k} = {text!r} is not a number") from None
                e = vector.elements[k]
                if e.max > e.min and not e.min <= v <= e.max:
                    raise RequestError(f"{vector.name}.{k} = {v:g} is outside {e.min:g}..{e.max:g}")
                out[k] = v
            return out
        if vector.kind == "Switch":
            return {k: text == "On" for k, text in req.values.items()}
        return dict(req.values)

    def _needs_connection(self, device: str) -> None:
        if not self.connected[device]:
            raise RequestError("not connected: connect the device first (CONNECTION.CONNECT)")

    def _connection(self, device: str, vector: X.Vector, values: dict) -> None:
        on = values.get("CONNECT", not values.get("DISCONNECT", True))
        self.connected[device] = bool(on)
        vector["CONNECT"], vector["DISCONNECT"] = bool(on), not on
        self.send(vector, "Ok")

    def _mount_request(self, vector: X.Vector, values: dict) -> None:
        name = vector.name
        if name == "CONNECTION":
            return self._connection(MOUNT, vector, values)
        if name == "POLLING_PERIOD":
            self.poll_s = values.get("PERIOD_MS", vector["PERIOD_MS"]) / 1000.0
            vector["PERIOD_MS"] = self.poll_s * 1000.0
            return self.send(vector, "Ok")
        if name in SKY_PROPS:
            params = self._params_from(vector, values, SKY_PROPS[name], self.sky.params, SkyParams)
            self.sky.set_params(params)
            return self.send(vector, "Ok")
        if name == "SKY_PRESET":
            chosen = [k for k, on in values.items() if on]
            if len(chosen) != 1:
                raise RequestError("choose one preset")
            params = replace(PRESETS[chosen[0].lower()], seed=self.sky.params.seed)
            self._reset_sky(params)
            for k in vector.elements:
                vector[k] = k == chosen[0]
            return self.send(vector, "Ok", f"sky {chosen[0].lower()}, started afresh")
        if name == "SKY_RESET":
            self._reset_sky(None)
            vector["RESET"] = False
            return self.send(vector, "Ok")
        if name == "SKY_LST":
            self.lst0, self.lst_at = values["LST"], self.clock()
            vector["LST"] = self.lst0
            return self.send(vector, "Ok")
        if name == "SKY_SLEW":
            self.slew_rate = values["RATE"]
            vector["RATE"] = self.slew_rate
            return self.send(vector, "Ok")
        if name in ("GUIDE_RATE", "TELESCOPE_INFO", "GEOGRAPHIC_COORD"):
            for k, v in values.items():
                vector[k] = v
            self.sky.guide_rate_ra = self.prop(MOUNT, "GUIDE_RATE")["GUIDE_RATE_WE"]
            self.sky.guide_rate_dec = self.prop(MOUNT, "GUIDE_RATE")["GUIDE_RATE_NS"]
            return self.send(vector, "Ok")
        if name == "ON_COORD_SET":
            chosen = [k for k, on in values.items() if on]
            if len(chosen) != 1:
                raise RequestError("choose one of TRACK, SLEW, SYNC")
            for k in vector.elements:
                vector[k] = k == chosen[0]
            return self.send(vector, "Ok")
        self._needs_connection(MOUNT)
        if name == "EQUATORIAL_EOD_COORD":
            return self._goto(vector, values)
        if name == "TELESCOPE_ABORT_MOTION":
            if self.slew_to is not None:
                self.slew_to = None
                self.send(self.prop(MOUNT, "EQUATORIAL_EOD_COORD"), "Idle")
                park = self.prop(MOUNT, "TELESCOPE_PARK")
                if park.state == "Busy":
                    self.send(park, "Alert", "park aborted")
            vector["ABORT"] = False
            return self.send(vector, "Ok", "motion aborted")
        if name == "TELESCOPE_PARK":
            if values.get("PARK"):
                return self._park()
            if values.get("UNPARK"):
                self.parked = False
                vector["PARK"], vector["UNPARK"] = False, True
                return self.send(vector, "Ok", "unparked")
            raise RequestError("choose PARK or UNPARK")
        if name == "TELESCOPE_TRACK_STATE":
            if self.parked:
                raise RequestError("parked: unpark before tracking")
            self.tracking = bool(values.get("TRACK_ON", not values.get("TRACK_OFF", True)))
            vector["TRACK_ON"], vector["TRACK_OFF"] = self.tracking, not self.tracking
            return self.send(vector, "Busy" if self.tracking else "Idle")
        if name in ("TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE"):
            return self.pulse(MOUNT, vector, values)
        raise RequestError(f"{name} cannot be set")

    def _params_from(self, vector: X.Vector, values: dict, items, current, cls):
        changes = {}
        for element, field_name, *_ in items:
            if element in values:
                v = values[element]
                changes[field_name] = int(round(v)) if field_name in INT_FIELDS else v
        params = replace(current, **changes)
        try:
            params.validate()
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        for element, field_name, *_ in items:
            vector[element] = float(getattr(params, field_name))
        return params

    def _reset_sky(self, params: SkyParams | None) -> None:
        self.t0 = self.clock()
        self.sky.reset(params)
        self.sky.dec = self.dec
        for name, items in SKY_PROPS.items():
            vector = self.prop(MOUNT, name)
            for element, field_name, *_ in items:
                vector[element] = float(getattr(self.sky.params, field_name))
            self.send(vector, "Ok")
        for cam in self.cameras.values():
            cam.reset_noise()

    # ---- the mount ------------------------------------------------------------------------------

    def _goto(self, vector: X.Vector, values: dict) -> None:
        ra = values.get("RA", vector["RA"]) % 24.0
        dec = values.get("DEC", vector["DEC"])
        mode = self.prop(MOUNT, "ON_COORD_SET").on()[0]
        e = self.sky.error()
        if mode == "SYNC":
            old = (self.ra, self.dec)
            self.ra = (ra - e.guide_ra_axis / 54000.0) % 24.0
            self.dec = dec - e.guide_dec_motor / 3600.0
            self.field_ra = (self.field_ra + self.ra - old[0]) % 24.0
            self.field_dec += self.dec - old[1]
            self._publish_coords("Ok")
            return
        if self.parked:
            raise RequestError("parked: unpark before a goto")
        self._start_slew(ra, dec, "track" if mode == "TRACK" else "stop")

    def _start_slew(self, ra: float, dec: float, after: str) -> None:
        # the published pointing (with the guide offsets) becomes the nominal one, then moves
        e = self.sky.error()
        self.ra = (self.ra + e.guide_ra_axis / 54000.0) % 24.0
        self.dec = self.dec + e.guide_dec_motor / 3600.0
        self.sky.repoint()
        self.slew_to = (ra, dec)
        self.after_slew = after
        self.field_ra, self.field_dec = ra, dec
        ha = _wrap_hours(self.lst() - ra)
        self.pier_east = ha > 0 if after != "park" else False
        side = self.prop(MOUNT, "TELESCOPE_PIER_SIDE")
        side["PIER_EAST"], side["PIER_WEST"] = self.pier_east, not self.pier_east
        self.send(side, "Ok")
        self._publish_coords("Busy")

    def _park(self) -> None:
        park = self.prop(MOUNT, "TELESCOPE_PARK")
        if self.parked:
            return self.send(park, "Ok", "already parked")
        self._start_slew(self.lst(), 90.0, "park")
        self.send(park, "Busy", "parking")

    def _move(self, wall: float, dt: float) -> None:
        """Slew and sidereal motion over the last ``dt`` seconds."""
        if self.slew_to is not None:
            ra_t, dec_t = self.slew_to
            step = self.slew_rate * dt
            d_ra = _wrap_hours(ra_t - self.ra) * 15.0
            d_dec = dec_t - self.dec
            self.ra = (self.ra + math.copysign(min(abs(d_ra), step), d_ra) / 15.0) % 24.0
            self.dec += math.copysign(min(abs(d_dec), step), d_dec)
            if abs(d_ra) <= step and abs(d_dec) <= step:
                self.ra, self.dec = ra_t, dec_t
                self.slew_to = None
                self._slew_done()
        elif not self.tracking:
            # the mount stands still in hour angle: the RA it points at runs with the sidereal clock
            self.ra = (self.ra + dt * SOLAR_TO_SIDEREAL / 3600.0) % 24.0
        self.sky.dec = self.dec

    def _slew_done(self) -> None:
        track = self.prop(MOUNT, "TELESCOPE_TRACK_STATE")
        if self.after_slew == "park":
            self.parked, self.tracking = True, False
            park = self.prop(MOUNT, "TELESCOPE_PARK")
            park["PARK"], park["UNPARK"] = True, False
            track["TRACK_ON"], track["TRACK_OFF"] = False, True
            self.send(track, "Idle")
            self._publish_coords("Ok")
            self.send(park, "Ok", "parked")  # last: whoever waits for it finds the rest in place
        else:
            self.tracking = self.after_slew == "track"
            track["TRACK_ON"], track["TRACK_OFF"] = self.tracking, not self.tracking
            self.send(track, "Busy" if self.tracking else "Idle")
            self._publish_coords("Ok")

    def _publish_coords(self, state: str | None = None) -> None:
        eod = self.prop(MOUNT, "EQUATORIAL_EOD_COORD")
        if state is None:
            state = "Busy" if self.slew_to is not None else "Ok"
        e = self.sky.error()
        eod["RA"] = (self.ra + e.guide_ra_axis / 54000.0) % 24.0
        eod["DEC"] = max(-90.0, min(90.0, self.dec + e.guide_dec_motor / 3600.0))
        self.send(eod, state)

    def pulse(self, device: str, vector: X.Vector, values: dict) -> None:
        """A timed guide pulse from the mount's or a camera's ST4 property, into the sky's mount."""
        self._needs_connection(device)
        if self.parked:
            raise RequestError("parked: guide pulses need an unparked mount")
        ns = vector.name.endswith("_NS")
        a, b = ("TIMED_GUIDE_N", "TIMED_GUIDE_S") if ns else ("TIMED_GUIDE_W", "TIMED_GUIDE_E")
        va, vb = values.get(a, 0.0), values.get(b, 0.0)
        # as INDI's Telescope: with both set, North (West) wins
        direction, ms = (a[-1], va) if va > 0 else (b[-1], vb)
        vector[a], vector[b] = (va, 0.0) if va > 0 else (0.0, vb)
        if ms <= 0:
            self.pulses.pop((device, vector.name), None)
            return self.send(vector, "Ok")
        self.sky.pulse(direction, ms)
        self.pulses[(device, vector.name)] = self.t0 + self.sky.t + ms / 1000.0
        self.send(vector, "Busy")

    # ---- time -----------------------------------------------------------------------------------

    def advance(self, wall: float | None = None) -> None:
        wall = self.clock() if wall is None else wall
        dt = max(0.0, wall - self.last_tick)
        self.last_tick = wall
        self._move(wall, dt)
        self.sky.advance(self.sim_time(wall))

    def next_deadline(self) -> float:
        times = [self.next_poll, *self.pulses.values()]
        times += [c.ends for c in self.cameras.values() if c.ends is not None]
        return min(times)

    def tick(self) -> None:
        """Whatever is due now: pulse ends, exposure ends, the poll's updates."""
        now = self.clock()
        self.advance(now)
        for key, end in list(self.pulses.items()):
            if now >= end:
                del self.pulses[key]
                vector = self.prop(*key)
                for k in vector.elements:
                    vector[k] = 0.0
                self.send(vector, "Ok")
        for cam in self.cameras.values():
            cam.tick(now)
        if now >= self.next_poll:
            self.next_poll = max(self.next_poll + self.poll_s, now)
            self._publish_coords()
            self._publish_truth()
            for cam in self.cameras.values():
                cam.poll(now)

    def _publish_truth(self) -> None:
        e = self.sky.error()
        vector = self.prop(MOUNT, "SKY_TRUE_ERROR")
        for element, attr in TRUE_ERROR_ITEMS:
            vector[element] = getattr(e, attr)
        self.send(vector, "Ok")

    def _refresh(self, vector: X.Vector) -> None:
        if vector.device == MOUNT and vector.name == "SKY_LST":
            vector["LST"] = self.lst()

    def field_offset(self) -> tuple[float, float]:
        """Arcsec (east, north) the nominal pointing sits from the field's centre."""
        cos_dec = math.cos(math.radians(self.dec))
        return _wrap_hours(self.ra - self.field_ra) * 54000.0 * cos_dec, (self.dec - self.field_dec) * 3600.0


def main() -> int:
    out = sys.stdout.buffer

    def write(text: str) -> None:
        out.write(text.encode())
        out.flush()

    driver = SkyDriver(write)
    parser = X.RequestParser()
    fd = sys.stdin.fileno()
    try:
        while True:
            wait = max(0.0, driver.next_deadline() - driver.clock())
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    return 0  # indiserver went away
                for req in parser.feed(data):
                    driver.handle(req)
            driver.tick()
    except BrokenPipeError:
        return 0
    except Exception:  # noqa: BLE001 - never silent: indiserver logs our stderr and restarts us
        print("indi_sky_sim: the driver loop failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return 1

