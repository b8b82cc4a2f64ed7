"""The sky's exposure ramp for twilight flats: pure, no clock (every time is an argument, epoch s).

The twilight sky's brightness is exponential in time: ``rate(t) = r0 * exp(g * (t - t0))`` ADU/s
per pixel, with ``g < 0`` at dusk (the sky darkens) and ``g > 0`` at dawn. A frame started at ``s``
with exposure ``e`` integrates it: ``mean = bias + r(s) * (exp(g e) - 1) / g``. Filters (and
binnings) differ by a constant factor, so each set (``key``) has its own ``r0`` while every key
shares ``g``: it is learnt from successive frames of the same key (a pooled fit of ln rate against
time, each key with its own intercept), starting from ``-ln 2 / halving_s`` (dusk; dawn: plus).

``decide`` turns the prediction into what the node does next: expose (the exposure that lands on
the target, clamped into the limits while the band is still reachable), wait (dusk still too bright
at the shortest exposure, dawn still too dark at the longest), or give up (dusk already too dark at
the longest exposure, dawn already too bright at the shortest, or a wait past the deadline), with a
reason that names the numbers and the setting to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Hashable

DIRECTIONS = ("dusk", "dawn")


@dataclass
class Decision:
    kind: str  # "expose" | "wait" | "give_up"
    exposure: float | None = None  # expose: seconds (within limits)
    until: float | None = None  # wait: epoch s when the sky should allow min/max exposure
    reason: str = ""


@dataclass
class _Obs:
    mid: float  # the frame's mid-time, epoch s
    start: float
    exposure: float
    log_rate: float  # ln of the mean rate over the frame, ADU/s
    mean: float  # the frame's mean ADU
    saturated: bool = False  # at the camera's saturation: the rate is a lower bound
    no_signal: bool = False  # at the bias: the rate is an upper bound


@dataclass
class SkyRamp:
    """What the frames so far say about the sky. ``observe`` each frame (the test frame too), then
    ``decide``. ``saturation_adu``: a frame at or above 98 % of this mean is clipped (its rate only a
    lower bound; say the camera's full scale). Frames above the band's top (the last ``decide``'s
    high_adu) may be clipped too: they do not teach the sky's change, and only raise a key's level.
    ``memory_s``: frames older than this before the newest one no longer inform the sky's change
    (twilight's rate drifts); default 3 halving times."""

    direction: str
    halving_s: float
    bias_adu: float = 0.0
    saturation_adu: float | None = None
    memory_s: float | None = None
    per_key: int = 10  # frames of one key the fit keeps
    test_scale: float | None = None  # a new key's test frame: this times the exposure another key needs
    _obs: dict = field(default_factory=dict, init=False, repr=False)  # key -> list[_Obs], oldest first
    _last_target: float | None = field(default=None, init=False, repr=False)
    _last_end: float | None = field(default=None, init=False, repr=False)
    _last_key: Hashable = field(default=None, init=False, repr=False)
    _high_adu: float | None = field(default=None, init=False, repr=False)  # the band's top, from decide

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"a sky ramp's direction is dusk or dawn, not {self.direction!r}")
        if not self.halving_s > 0:
            raise ValueError(f"halving_s must be > 0 s, got {self.halving_s}")
        if self.memory_s is None:
            self.memory_s = 3.0 * self.halving_s
        if self.test_scale is None:
            # dusk: the next set needs less light (order.py), so it is brighter: a shorter test frame
            # keeps it off saturation; dawn: the next one is darker, the same exposure is safe
            self.test_scale = 0.5 if self.direction == "dusk" else 1.0

    # -- the model ---------------------------------------------------------------------------------

    @property
    def prior_growth(self) -> float:
        """The sky's change per second before any frame: -ln2/halving_s at dusk, +ln2/halving_s at dawn."""
        k = math.log(2.0) / self.halving_s
        return -k if self.direction == "dusk" else k

    def growth(self) -> float:
        """The sky's learnt change per second, g in rate ~ exp(g t) (dusk < 0, dawn > 0).

        A pooled least-squares slope of ln rate over the frames' mid-times, each key around its own
        mean (filters differ by a constant factor), with the prior worth two frames 0.1 halving time
        apart; the sign is the direction's (noise must not turn a dusk into a dawn)."""
        g0 = self.prior_growth
        newest = self._newest_time()
        if newest is None:
            return g0
        sxx = sxy = 0.0
        for obs in self._obs.values():
            pts = [o for o in obs if not self._bound(o) and newest - o.mid <= self.memory_s][-self.per_key:]
            if len(pts) < 2:
                continue
            tm = sum(o.mid for o in pts) / len(pts)
            ym = sum(o.log_rate for o in pts) / len(pts)
            for o in pts:
                sxx += (o.mid - tm) ** 2
                sxy += (o.mid - tm) * (o.log_rate - ym)
        prior_sxx = (0.1 * self.halving_s) ** 2 * 2.0  # two frames 0.1 halving apart
        g = (sxy + prior_sxx * g0) / (sxx + prior_sxx)
        floor = abs(g0) / 20.0
        return min(g, -floor) if self.direction == "dusk" else max(g, floor)

    def observe(self, key, start: float, exposure: float, mean_adu: float) -> None:
        """One frame of set ``key`` (hashable, e.g. the FlatSet), started at ``start`` (epoch s)."""
        if not exposure > 0:
            raise ValueError(f"a frame's exposure must be > 0 s, got {exposure}")
        mean_adu = float(mean_adu)
        signal = mean_adu - self.bias_adu
        saturated = self.saturation_adu is not None and mean_adu >= 0.98 * self.saturation_adu
        rate = max(signal, 1.0) / exposure
        obs = _Obs(start + exposure / 2.0, start, exposure, math.log(rate), mean_adu, saturated, signal < 1.0)
        self._obs.setdefault(key, []).append(obs)
        if len(self._obs[key]) > 4 * self.per_key:
            del self._obs[key][: -2 * self.per_key]
        self._last_end = start + exposure
        self._last_key = key

    def _bound(self, o: _Obs) -> bool:
        """Only a bound on the rate: clipped, no signal, or above the band (maybe clipped)."""
        return o.saturated or o.no_signal or (self._high_adu is not None and o.mean > self._high_adu)

    def _newest_time(self) -> float | None:
        times = [obs[-1].mid for obs in self._obs.values() if obs]
        return max(times) if times else None

    def _log_rate_at(self, key, t: float, g: float) -> float | None:
        obs = self._obs.get(key)
        if not obs:
            return None
        good = [o for o in obs if not self._bound(o)][-3:]
        latest = obs[-1]
        if good:
            # the key's level from its last few good frames (their average, projected along g)
            level = sum(o.log_rate - g * o.mid for o in good) / len(good)
            if latest.mid > good[-1].mid:  # a newer bound
                bound_level = latest.log_rate - g * latest.mid
                if latest.no_signal:
                    level = min(level, bound_level)  # no signal: at most this bright
                else:
                    level = max(level, bound_level)  # clipped or above the band: at least this bright
            return level + g * t
        level = latest.log_rate - g * latest.mid
        # clipped (or no signal), unknown by how much: assume 4x brighter (darker), 16x after two such
        # frames in a row...: a sky far off the band is reached in a few frames, not dozens
        run = 0
        for o in reversed(obs):
            if (o.saturated and latest.saturated) or (o.no_signal and latest.no_signal):
                run += 1
            else:
                break
        if latest.saturated:
            level += run * math.log(4.0)
        elif latest.no_signal:
            level -= run * math.log(4.0)
        return level + g * t

    def rate(self, key, t: float) -> float | None:
        """Predicted ADU/s (above bias) of set ``key`` at ``t``; None: nothing observed of it yet."""
        log_rate = self._log_rate_at(key, t, self.growth())
        return None if log_rate is None else math.exp(log_rate)

    def integral(self, key, start: float, exposure: float) -> float | None:
        """The predicted mean ADU (incl. bias) of a frame of ``key`` started at ``start``."""
        r = self.rate(key, start)
        if r is None:
            return None
        return self.bias_adu + r * _gain_factor(self.growth(), exposure)

    def next_exposure(self, key, start: float, target_adu: float) -> float | None:
        """The exposure that, started at ``start``, integrates the sky to ``target_adu`` (the mean incl.
        bias); ``math.inf`` when the darkening sky can never give that much; None: nothing observed."""
        self._last_target = float(target_adu)
        r = self.rate(key, start)
        if r is None:
            return None
        return _exposure_for(r, self.growth(), target_adu - self.bias_adu)


def _gain_factor(g: float, exposure: float) -> float:
    """∫_0^e exp(g t) dt."""
    if abs(g * exposure) < 1e-9:
        return exposure
    return math.expm1(g * exposure) / g


def _exposure_for(rate: float, g: float, signal: float) -> float:
    """The e with rate * ∫_0^e exp(g t) dt = signal."""
    if signal <= 0:
        return 0.0
    if abs(g) < 1e-12:
        return signal / rate
    arg = g * signal / rate
    if arg <= -1.0:
        return math.inf
    return math.log1p(arg) / g


def _fmt_s(seconds: float) -> str:
    if math.isinf(seconds):
        return "more than the darkening sky can give"
    return f"{seconds:.3g} s"


def decide(ramp: SkyRamp, key, now: float, target_adu: float, low_adu: float, high_adu: float,
           min_exposure: float, max_exposure: float, overhead_s: float = 0.0,
           deadline: float | None = None) -> Decision:
    """The next frame of ``key``: expose, wait or give up.

    ``now``: the moment of the decision; ``overhead_s``: the expected time from it to the shutter
    opening (the frame is predicted as started at ``now + overhead_s``); ``deadline``: no wait ends
    after it (the end of the twilight window). ADU values are means incl. bias."""
    start = now + overhead_s
    ramp._high_adu = float(high_adu)
    g = ramp.growth()
    exposure = ramp.next_exposure(key, start, target_adu)
    if exposure is None:
        return Decision("expose", test_exposure(ramp, key, min_exposure, max_exposure, None, now=now,
                                                target_adu=target_adu),
                        reason="no frame of this set measured yet: a test frame")
    rate = ramp.rate(key, start)
    signal = target_adu - ramp.bias_adu

    def adu_at(exp: float) -> float:
        return ramp.bias_adu + rate * _gain_factor(g, exp)

    if min_exposure <= exposure <= max_exposure:
        return Decision("expose", exposure)
    if exposure < min_exposure:  # too bright
        at_min = adu_at(min_exposure)
        if at_min <= high_adu:
            return Decision("expose", min_exposure, reason=f"clamped to flats.min_exposure {min_exposure:g} s "
                                                           f"(needs {_fmt_s(exposure)})")
        if ramp.direction == "dawn":
            return Decision("give_up", reason=(
                f"the sky is too bright: needs {_fmt_s(exposure)} < flats.min_exposure {min_exposure:g} s "
                f"({at_min:.0f} ADU at {min_exposure:g} s, band {low_adu:.0f}..{high_adu:.0f}) and the dawn "
                "only brightens; lower flats.min_exposure or start dawn flats earlier (flats.sun_altitude)"))
        # dusk: wait until the shortest exposure lands on the target
        until = start + math.log(signal / (rate * _gain_factor(g, min_exposure))) / g - overhead_s
        if deadline is not None and until > deadline:
            return Decision("give_up", reason=(
                f"the sky is too bright: needs {_fmt_s(exposure)} < flats.min_exposure {min_exposure:g} s, and "
                f"it would be dark enough only {until - now:.0f} s from now, after the flats window ends; lower "
                "flats.min_exposure or widen flats.sun_altitude"))
        return Decision("wait", until=max(until, now), reason=(
            f"too bright: needs {_fmt_s(exposure)} < flats.min_exposure {min_exposure:g} s; the dusk sky "
            f"allows it in {max(until - now, 0.0):.0f} s"))
    # too dark
    at_max = adu_at(max_exposure)
    if at_max >= low_adu:
        return Decision("expose", max_exposure, reason=f"clamped to flats.max_exposure {max_exposure:g} s "
                                                       f"(needs {_fmt_s(exposure)})")
    if ramp.direction == "dusk":
        return Decision("give_up", reason=(
            f"the sky is too dark: needs {_fmt_s(exposure)} > flats.max_exposure {max_exposure:g} s "
            f"({at_max:.0f} ADU at {max_exposure:g} s, band {low_adu:.0f}..{high_adu:.0f}) and the dusk only "
            "darkens; raise flats.max_exposure or start dusk flats earlier (flats.sun_altitude)"))
    until = start + math.log(signal / (rate * _gain_factor(g, max_exposure))) / g - overhead_s
    if deadline is not None and until > deadline:
        return Decision("give_up", reason=(
            f"the sky is too dark: needs {_fmt_s(exposure)} > flats.max_exposure {max_exposure:g} s, and it "
            f"would be bright enough only {until - now:.0f} s from now, after the flats window ends; raise "
            "flats.max_exposure or widen flats.sun_altitude"))
    return Decision("wait", until=max(until, now), reason=(
        f"too dark: needs {_fmt_s(exposure)} > flats.max_exposure {max_exposure:g} s; the dawn sky allows it "
        f"in {max(until - now, 0.0):.0f} s"))


def test_exposure(ramp: SkyRamp, key, min_exposure: float, max_exposure: float, guess: float | None,
                  now: float | None = None, target_adu: float | None = None) -> float:
    """The first (test) frame's exposure of ``key``: what another key's known rate asks for at ``now``
    (default: the end of the last frame) for ``target_adu`` (default: the last target asked for),
    times ``ramp.test_scale``; else ``guess``; else ``min_exposure``. Always within the limits."""
    others = [k for k, obs in ramp._obs.items() if obs and k != key]
    exposure = None
    if ramp._obs.get(key):
        target = target_adu if target_adu is not None else ramp._last_target
        if target is not None:
            t = now if now is not None else (ramp._last_end or 0.0)
            exposure = ramp.next_exposure(key, t, target)
    elif others:
        other = ramp._last_key if ramp._last_key in others else others[-1]
        target = target_adu if target_adu is not None else ramp._last_target
        if target is not None:
            t = now if now is not None else (ramp._last_end or 0.0)
            needed = ramp.next_exposure(other, t, target)
            if needed is not None and math.isfinite(needed):
                exposure = needed * ramp.test_scale
        if exposure is None:
            exposure = ramp._obs[other][-1].exposure * ramp.test_scale
    if exposure is None or not math.isfinite(exposure):
        exposure = guess if guess is not None else min_exposure
    return min(max(float(exposure), min_exposure), max_exposure)


# pytest must not collect the function above as a test (it lives in a module it imports)
test_exposure.__test__ = False  # type: ignore[attr-defined]
