"""The sky's true pointing error: pure, stepped on a fixed time grid, deterministic for a seed.

Everything is in arcseconds on the sky unless a name says ``axis``; RA errors are along the RA
great circle (an RA-axis angle times cos Dec). Signs:

- ``error_ra`` > 0: the mount points east of its target (too large an RA); a West pulse lowers it;
- ``error_dec`` > 0: the mount points north of its target; a South pulse lowers it.

The error is the sum of

- periodic error: a main term of ``pe_amplitude`` (RA-axis arcsec, half peak-to-peak) over
  ``pe_period`` seconds plus a 2nd and a 3rd harmonic, phases drawn from the seed; on the sky it
  scales with cos Dec, as a worm's error does;
- polar-misalignment drift: a steady ``drift_ra`` / ``drift_dec`` (arcsec per minute, on the sky);
- wind gusts: Poisson events (``gust_rate`` per minute), each a push of up to ``gust_amplitude``
  in a random direction that rises and falls back as sin² over ``gust_duration`` seconds;
- guide pulses: at the mount's guide rate (a fraction of sidereal) for exactly their duration; RA
  moves the axis (on the sky × cos Dec), Dec goes through the gears' ``backlash_dec`` (a play
  operator: after a reversal the first ``backlash_dec`` arcsec of motor motion do not move the axis).

Seeing is apart from the mount's error: the star's apparent position wanders as an
Ornstein–Uhlenbeck process per axis (``wander`` arcsec RMS for an instant, correlation time
``wander_tau``); an exposure sees its average, so its jitter shrinks with exposure time by itself.

The model steps on a fixed grid of ``STEP_S`` seconds and draws its random numbers per step from
separate streams (seeing, gusts), so the same seed gives the same sky whenever and however often it
is looked at, and whatever pulses it receives.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

SIDEREAL_ARCSEC_PER_S = 15.041067  # RA-axis arcsec per second of time
STEP_S = 0.01  # the model's time grid


@dataclass(frozen=True)
class SkyParams:
    pe_amplitude: float = 0.0  # RA-axis arcsec, half peak-to-peak of the main term
    pe_period: float = 480.0  # s
    pe_h2: float = 0.0  # RA-axis arcsec of the 2nd harmonic
    pe_h3: float = 0.0  # and of the 3rd
    drift_ra: float = 0.0  # arcsec per minute on the sky (polar misalignment)
    drift_dec: float = 0.0
    seeing_fwhm: float = 2.0  # arcsec: the blur of a star
    wander: float = 0.0  # arcsec RMS per axis of the star's apparent position (an instant)
    wander_tau: float = 0.3  # s, correlation time of the wander
    gust_rate: float = 0.0  # gusts per minute
    gust_amplitude: float = 0.0  # arcsec: the largest push of one gust
    gust_duration: float = 2.0  # s
    backlash_dec: float = 0.0  # arcsec of Dec gear play
    seed: int = 1

    def validate(self) -> None:
        """ValueError naming the parameter and what is allowed."""
        for f in fields(self):
            v = getattr(self, f.name)
            if not math.isfinite(v):
                raise ValueError(f"sky parameter {f.name} = {v}: allowed: a finite number")
        for name in ("pe_amplitude", "pe_h2", "pe_h3", "wander", "gust_rate", "gust_amplitude", "backlash_dec"):
            if getattr(self, name) < 0:
                raise ValueError(f"sky parameter {name} = {getattr(self, name)}: allowed: >= 0")
        for name in ("pe_period", "seeing_fwhm", "wander_tau", "gust_duration"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sky parameter {name} = {getattr(self, name)}: allowed: > 0")

    def as_dict(self) -> dict:
        return asdict(self)


# The benchmark's three skies (and a calm one for tests that want no error at all).
PRESETS: dict[str, SkyParams] = {
    "calm": SkyParams(seeing_fwhm=2.0),
    # seeing 1.5", PE +-8" over 480 s, a well aligned mount, no wind
    "good": SkyParams(pe_amplitude=8.0, pe_period=480.0, pe_h2=1.5, pe_h3=0.7, drift_ra=0.3, drift_dec=0.6,
                      seeing_fwhm=1.5, wander=0.35, wander_tau=0.3, backlash_dec=3.0),
    "average": SkyParams(pe_amplitude=12.0, pe_period=480.0, pe_h2=3.0, pe_h3=1.5, drift_ra=0.6, drift_dec=1.5,
                         seeing_fwhm=2.5, wander=0.6, wander_tau=0.3, gust_rate=1.0, gust_amplitude=1.5,
                         gust_duration=2.0, backlash_dec=6.0),
    # gusty
    "bad": SkyParams(pe_amplitude=15.0, pe_period=480.0, pe_h2=4.0, pe_h3=2.0, drift_ra=1.0, drift_dec=3.0,
                     seeing_fwhm=3.5, wander=1.0, wander_tau=0.4, gust_rate=6.0, gust_amplitude=4.0,
                     gust_duration=3.0, backlash_dec=12.0),
}


@dataclass(frozen=True)
class TrueError:
    """The sky at one instant (arcsec on the sky; see the module doc for signs)."""

    time: float  # s since the sky's start
    ra: float  # the mount's pointing error: everything below but seeing
    dec: float
    seeing_ra: float  # the seeing's apparent offset of the star now (not part of the mount's error)
    seeing_dec: float
    pe: float  # periodic error on the sky (RA)
    drift_ra: float
    drift_dec: float
    gust_ra: float
    gust_dec: float
    guide_ra: float  # what the guide pulses have done to the error
    guide_dec: float
    guide_ra_axis: float  # RA-axis arcsec the pulses moved the motor (the mount's coordinates follow it)
    guide_dec_motor: float  # Dec motor arcsec (before backlash: the mount's coordinates follow it)

    @property
    def unguided_ra(self) -> float:
        """The same sky without any guide pulse."""
        return self.ra - self.guide_ra

    @property
    def unguided_dec(self) -> float:
        return self.dec - self.guide_dec

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Exposure:
    """What one exposure saw: sums of the star's apparent offset (mount error + seeing) per step."""

    start: float
    n: int = 0
    sum_ra: float = 0.0
    sum_dec: float = 0.0
    sum_ra2: float = 0.0
    sum_dec2: float = 0.0
    sum_err_ra: float = 0.0  # the mount's error alone
    sum_err_dec: float = 0.0
    sum_see_ra: float = 0.0
    sum_see_dec: float = 0.0

    def add(self, app_ra: float, app_dec: float, err_ra: float, err_dec: float) -> None:
        self.n += 1
        self.sum_ra += app_ra
        self.sum_dec += app_dec
        self.sum_ra2 += app_ra * app_ra
        self.sum_dec2 += app_dec * app_dec
        self.sum_err_ra += err_ra
        self.sum_err_dec += err_dec
        self.sum_see_ra += app_ra - err_ra
        self.sum_see_dec += app_dec - err_dec

    def mean(self) -> tuple[float, float]:
        """The star's mean apparent offset (RA, Dec) over the exposure: what its centroid shows."""
        return (self.sum_ra / self.n, self.sum_dec / self.n) if self.n else (0.0, 0.0)

    def mean_error(self) -> tuple[float, float]:
        return (self.sum_err_ra / self.n, self.sum_err_dec / self.n) if self.n else (0.0, 0.0)

    def mean_seeing(self) -> tuple[float, float]:
        return (self.sum_see_ra / self.n, self.sum_see_dec / self.n) if self.n else (0.0, 0.0)

    def smear(self) -> float:
        """RMS (arcsec, the mean of both axes' variances) of the motion about the mean: the blur it adds."""
        if self.n < 2:
            return 0.0
        mr, md = self.mean()
        var = (self.sum_ra2 / self.n - mr * mr + self.sum_dec2 / self.n - md * md) / 2.0
        return math.sqrt(max(var, 0.0))


def play(output: float, motor: float, backlash: float) -> float:
    """The play (backlash) operator: the axis follows the motor only once the play is taken up."""
    half = backlash / 2.0
    if motor - output > half:
        return motor - half
    if output - motor > half:
        return motor + half
    return output


@dataclass
class _Pulse:
    sign: float  # +1: moves the error up (East for RA, North for Dec)
    start: float
    end: float


class Sky:
    """The stepped model. ``advance(t)`` moves it to sim time ``t``; ``pulse`` starts a guide pulse."""

    def __init__(self, params: SkyParams | None = None, dec: float = 0.0, guide_rate_ra: float = 0.5,
                 guide_rate_dec: float = 0.5):
        self.params = params or SkyParams()
        self.params.validate()
        self.dec = dec  # degrees: where the mount points (cos Dec scales RA)
        self.guide_rate_ra, self.guide_rate_dec = guide_rate_ra, guide_rate_dec
        self._exposures: list[Exposure] = []
        self.reset()

    def reset(self, params: SkyParams | None = None) -> None:
        """Start the sky afresh (time 0, no pulses, the seed's random streams from the start)."""
        if params is not None:
            params.validate()
            self.params = params
        p = self.params
        seeing_seq, gust_seq, phase_seq = np.random.SeedSequence(int(p.seed)).spawn(3)
        self._rng_seeing = np.random.default_rng(seeing_seq)
        self._rng_gust = np.random.default_rng(gust_seq)
        self._phases = np.random.default_rng(phase_seq).uniform(0, 2 * math.pi, 3)
        self.t = 0.0
        self._k = 0
        self._seeing = [0.0, 0.0]
        if p.wander > 0:  # start in the stationary distribution
            self._seeing = [float(p.wander * self._rng_seeing.standard_normal()) for _ in range(2)]
        self._gusts: list[tuple[float, float, float]] = []  # (start, amplitude ra, amplitude dec)
        self._drift_origin = 0.0
        self._guide_ra_axis = 0.0
        self._dec_motor = 0.0
        self._dec_out = 0.0
        self._pulses: dict[str, _Pulse | None] = {"ra": None, "dec": None}
        for e in self._exposures:
            e.__init__(0.0)

    def repoint(self) -> None:
        """A goto: the mount points afresh by its encoders, so the drift so far and what the guide
        pulses did are gone; periodic error (the worm's phase), gusts and seeing go on."""
        self._drift_origin = self.t
        self._guide_ra_axis = self._dec_motor = self._dec_out = 0.0
        self._pulses = {"ra": None, "dec": None}

    def set_params(self, params: SkyParams) -> None:
        """New parameters from now on (time, pulses and random streams go on)."""
        params.validate()
        if params.seed != self.params.seed:
            self.reset(params)
        else:
            self.params = params

    # ---- deterministic parts --------------------------------------------------------------------

    def _cos_dec(self) -> float:
        return math.cos(math.radians(self.dec))

    def pe_axis(self, t: float) -> float:
        p, ph = self.params, self._phases
        w = 2 * math.pi / p.pe_period
        return (p.pe_amplitude * math.sin(w * t + ph[0]) + p.pe_h2 * math.sin(2 * w * t + ph[1])
                + p.pe_h3 * math.sin(3 * w * t + ph[2]))

    def _gust(self, t: float) -> tuple[float, float]:
        d = self.params.gust_duration
        ra = dec = 0.0
        for start, a_ra, a_dec in self._gusts:
            x = (t - start) / d
            if 0.0 <= x <= 1.0:
                s = math.sin(math.pi * x) ** 2
                ra += a_ra * s
                dec += a_dec * s
        return ra, dec

    # ---- pulses ---------------------------------------------------------------------------------

    def pulse(self, direction: str, ms: float) -> float:
        """Start a guide pulse (N, S, E, W) of ``ms`` milliseconds now (the model's time: advance
        it first). A pulse on the same axis still running ends here, as a new TIMED_GUIDE replaces
        the old one. Returns the sim time the pulse ends."""
        if direction not in ("N", "S", "E", "W"):
            raise ValueError(f"unknown guide direction {direction!r}; allowed: N, S, E, W")
        start = self.t
        axis = "ra" if direction in ("E", "W") else "dec"
        sign = 1.0 if direction in ("E", "N") else -1.0
        end = start + max(ms, 0.0) / 1000.0
        self._pulses[axis] = _Pulse(sign, start, end)
        return end

    def pulsing(self, axis: str) -> bool:
        p = self._pulses[axis]
        return p is not None and p.end > self.t

    def _pulse_motion(self, axis: str, t0: float, t1: float) -> float:
        """Axis arcsec the pulse on ``axis`` moves the motor in [t0, t1]."""
        p = self._pulses[axis]
        if p is None:
            return 0.0
        overlap = min(t1, p.end) - max(t0, p.start)
        if overlap <= 0:
            return 0.0
        rate = self.guide_rate_ra if axis == "ra" else self.guide_rate_dec
        return p.sign * rate * SIDEREAL_ARCSEC_PER_S * overlap

    # ---- time -----------------------------------------------------------------------------------

    def advance(self, t: float) -> None:
        """Step the model to sim time ``t`` (on its grid: to the last step at or before ``t``)."""
        while (self._k + 1) * STEP_S <= t + 1e-9:
            self._step()

    def _step(self) -> None:
        p = self.params
        t0 = self._k * STEP_S
        t1 = t0 + STEP_S
        # seeing: exact OU update, one draw per axis per step
        if p.wander > 0:
            a = math.exp(-STEP_S / p.wander_tau)
            s = p.wander * math.sqrt(1 - a * a)
            n = self._rng_seeing.standard_normal(2)
            self._seeing = [a * self._seeing[0] + s * float(n[0]), a * self._seeing[1] + s * float(n[1])]
        else:
            self._seeing = [0.0, 0.0]
            self._rng_seeing.standard_normal(2)  # keep the stream aligned whatever the parameters
        # gusts: one uniform, one amplitude and one angle per step
        u, size, angle = self._rng_gust.random(3)
        if p.gust_rate > 0 and p.gust_amplitude > 0 and u < p.gust_rate / 60.0 * STEP_S:
            amp = p.gust_amplitude * (0.5 + 0.5 * float(size))
            theta = 2 * math.pi * float(angle)
            self._gusts.append((t1, amp * math.cos(theta), amp * math.sin(theta)))
        self._gusts = [g for g in self._gusts if t1 - g[0] <= p.gust_duration]
        # pulses
        self._guide_ra_axis += self._pulse_motion("ra", t0, t1)
        self._dec_motor += self._pulse_motion("dec", t0, t1)
        self._dec_out = play(self._dec_out, self._dec_motor, p.backlash_dec)
        self._k += 1
        self.t = t1
        if self._exposures:
            e = self.error()
            app_ra, app_dec = e.ra + e.seeing_ra, e.dec + e.seeing_dec
            for x in self._exposures:
                x.add(app_ra, app_dec, e.ra, e.dec)

    def error(self) -> TrueError:
        """The true error now (at the model's time ``t``)."""
        p, t, c = self.params, self.t, self._cos_dec()
        pe = self.pe_axis(t) * c
        d_ra, d_dec = p.drift_ra * (t - self._drift_origin) / 60.0, p.drift_dec * (t - self._drift_origin) / 60.0
        g_ra, g_dec = self._gust(t)
        guide_ra = self._guide_ra_axis * c
        guide_dec = self._dec_out
        return TrueError(
            time=t, ra=pe + d_ra + g_ra + guide_ra, dec=d_dec + g_dec + guide_dec,
            seeing_ra=self._seeing[0], seeing_dec=self._seeing[1], pe=pe, drift_ra=d_ra, drift_dec=d_dec,
            gust_ra=g_ra, gust_dec=g_dec, guide_ra=guide_ra, guide_dec=guide_dec,
            guide_ra_axis=self._guide_ra_axis, guide_dec_motor=self._dec_motor,
        )

    # ---- exposures ------------------------------------------------------------------------------

    def open_exposure(self) -> Exposure:
        e = Exposure(self.t)
        self._exposures.append(e)
        return e

    def close_exposure(self, e: Exposure) -> Exposure:
        if e in self._exposures:
            self._exposures.remove(e)
        if e.n == 0:  # shorter than one step: the instant
            now = self.error()
            e.add(now.ra + now.seeing_ra, now.dec + now.seeing_dec, now.ra, now.dec)
        return e


def preset(name: str, **overrides) -> SkyParams:
    """A named sky (PRESETS) with some parameters changed; ValueError for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown sky preset {name!r}; known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
