"""The sky's exposure ramp (calib.ramp) against a synthetic twilight sky on a simulated clock.

The sky: ADU/s per pixel = base * 2**(-(offset of the filter)/10) * 2**(-t/halving) at dusk (dawn:
+t), piecewise constant over each second (the simulator's SIM_SKYGLOW is set about once a second),
a little noise, clipped at the camera's saturation. A frame's mean = bias + the integral. Each
filter: a test frame, then decide() until count frames were kept; the frames after the test frame
must land in the band (>= 95 %), in the order the sky allows, several filters in sequence.
"""

from __future__ import annotations

import math
import random

import pytest

from indisync.calib.ramp import Decision, SkyRamp, decide, test_exposure

FULL = 65535.0
TARGET, LOW, HIGH = 0.4 * FULL, 0.3 * FULL, 0.5 * FULL
SATURATION = 65000.0
BIAS = 4.5
OFFSETS = {"L": 0, "R": 5, "G": 5, "B": 7, "Ha": 25}  # magnitudes/10 of the sky per filter (H4's table)
DUSK_ORDER = ["Ha", "B", "G", "R", "L"]


class Sky:
    def __init__(self, direction: str, halving_s: float, base: float, seed: int = 1, noise: float = 0.003):
        self.sign = -1.0 if direction == "dusk" else 1.0
        self.halving_s = halving_s
        self.base = base
        self.noise = noise
        self.rng = random.Random(seed)

    def rate(self, filt: str, t: float) -> float:
        step = math.floor(t)  # set once a second
        return self.base * 2.0 ** (-OFFSETS[filt] / 10.0) * 2.0 ** (self.sign * step / self.halving_s)

    def frame(self, filt: str, start: float, exposure: float) -> float:
        total, t, end = 0.0, start, start + exposure
        while t < end:
            nxt = min(end, math.floor(t) + 1.0)
            total += self.rate(filt, t) * (nxt - t)
            t = nxt
        mean = BIAS + total * (1.0 + self.rng.gauss(0.0, self.noise))
        return min(mean, SATURATION)


def run_flats(direction: str, sky: Sky, filters: list[str], prior_halving: float = 180.0, count: int = 20,
              min_exposure: float = 0.1, max_exposure: float = 30.0, latency: float = 0.2, download: float = 1.0,
              deadline: float | None = None, jitter: float = 0.0, saturation: float | None = FULL):
    """Simulate a node's sky flats; returns per filter (adus after the test frame, decisions, kept)."""
    ramp = SkyRamp(direction, prior_halving, bias_adu=BIAS, saturation_adu=saturation)
    now = 0.0
    out = {}
    for filt in filters:
        adus, decisions = [], []
        exposure = test_exposure(ramp, filt, min_exposure, max_exposure, None)
        start = now + latency
        ramp.observe(filt, start, exposure, sky.frame(filt, start, exposure))
        now = start + exposure + download
        kept = 0
        for _ in range(400):
            d = decide(ramp, filt, now, TARGET, LOW, HIGH, min_exposure, max_exposure, overhead_s=latency,
                       deadline=deadline)
            decisions.append(d)
            if d.kind == "give_up":
                break
            if d.kind == "wait":
                assert d.until >= now
                now = d.until
                continue
            assert min_exposure <= d.exposure <= max_exposure
            start = now + latency + sky.rng.uniform(0.0, jitter)
            adu = sky.frame(filt, start, d.exposure)
            ramp.observe(filt, start, d.exposure, adu)
            adus.append(adu)
            now = start + d.exposure + download
            if LOW <= adu <= HIGH:
                kept += 1
                if kept == count:
                    break
        out[filt] = (adus, decisions, kept)
    return out, now


def _in_band(out) -> tuple[int, int]:
    adus = [a for adus, _, _ in out.values() for a in adus]
    return sum(LOW <= a <= HIGH for a in adus), len(adus)


@pytest.mark.parametrize("halving", [180.0, 120.0, 300.0])
@pytest.mark.parametrize("base", [1e8, 2e6, 2e5, 5e4])  # a clipped test frame, too bright (a wait) .. seconds
def test_dusk_keeps_frames_in_band(halving, base):
    sky = Sky("dusk", halving, base)
    out, end = run_flats("dusk", sky, DUSK_ORDER)
    good, total = _in_band(out)
    assert all(kept == 20 for _, _, kept in out.values()), {f: k for f, (_, _, k) in out.items()}
    assert good >= 0.95 * total, (good, total)
    if base >= 2e6:  # Ha at 0.1 s is far above the band: the ramp waits for the sky first
        assert out["Ha"][1][0].kind == "wait"


@pytest.mark.parametrize("halving", [180.0, 120.0, 300.0])
@pytest.mark.parametrize("base", [3.0, 300.0, 3000.0, 5e4])  # no signal at first, too dark .. short exposures
def test_dawn_keeps_frames_in_band(halving, base):
    sky = Sky("dawn", halving, base)
    out, end = run_flats("dawn", sky, DUSK_ORDER[::-1])
    good, total = _in_band(out)
    assert all(kept == 20 for _, _, kept in out.values()), {f: k for f, (_, _, k) in out.items()}
    assert good >= 0.95 * total, (good, total)
    if base <= 300.0:
        assert out["L"][1][0].kind == "wait"


def test_a_busy_node_noisy_sky_still_lands_in_band():
    """The shutter opens 0.2..1.7 s after the decision (a busy machine), the frames' means scatter 1 %, and
    the ramp was not told the camera's saturation."""
    for direction, base in (("dusk", 2e6), ("dusk", 2e5), ("dawn", 300.0), ("dawn", 3000.0)):
        sky = Sky(direction, 180.0, base, seed=7, noise=0.01)
        out, _ = run_flats(direction, sky, DUSK_ORDER if direction == "dusk" else DUSK_ORDER[::-1], jitter=1.5,
                           saturation=None)
        good, total = _in_band(out)
        assert all(kept == 20 for _, _, kept in out.values())
        assert good >= 0.95 * total, (direction, good, total)


def test_a_dusk_that_runs_out_gives_up_the_later_filters_with_the_reason():
    """Ha needs 7 s at first: by the time B is done the sky is too dark for the rest at 30 s."""
    sky = Sky("dusk", 120.0, 2e4)
    out, _ = run_flats("dusk", sky, DUSK_ORDER)
    assert out["Ha"][2] >= 15  # the first sets got (nearly) all their frames
    gave_up = [f for f, (_, decisions, _) in out.items() if decisions and decisions[-1].kind == "give_up"]
    assert "L" in gave_up and "R" in gave_up
    assert all("flats.max_exposure 30 s" in out[f][1][-1].reason for f in gave_up)
    good, total = _in_band(out)
    assert good >= 0.95 * total  # what it took before giving up was in band


def test_the_ramp_follows_the_sky_within_a_long_set():
    """Exposures of tens of seconds while the sky halves every 3 min: the integral, not the rate at the start."""
    sky = Sky("dusk", 180.0, 3000.0)
    out, end = run_flats("dusk", sky, ["L"], max_exposure=120.0)
    adus, decisions, kept = out["L"]
    exposures = [d.exposure for d in decisions if d.kind == "expose"]
    assert exposures[-1] > 2 * exposures[0]  # it lengthened as the sky darkened
    assert kept == 20 and all(LOW <= a <= HIGH for a in adus)
    assert end > 180.0  # the sky changed more than x2 during the set


def test_growth_is_learnt():
    sky = Sky("dusk", 120.0, 2e4, noise=0.0)
    ramp = SkyRamp("dusk", 180.0)
    for i in range(10):
        start = i * 15.0
        ramp.observe("R", start, 1.0, sky.frame("R", start, 1.0))
    assert ramp.growth() == pytest.approx(-math.log(2) / 120.0, rel=0.1)
    assert ramp.rate("R", 150.0) == pytest.approx(sky.rate("R", 150.0), rel=0.03)
    assert ramp.rate("L", 150.0) is None


def test_next_exposure_integrates_the_exponential():
    ramp = SkyRamp("dusk", 180.0)
    ramp.observe("L", 0.0, 1e-3, 1000.0 * 1e-3)  # 1000 ADU/s at t=0
    g = ramp.growth()
    e = ramp.next_exposure("L", 0.0, 20000.0)
    assert 1000.0 * math.expm1(g * e) / g == pytest.approx(20000.0, rel=1e-3)
    assert e > 20.0  # the darkening sky gives less than 1000 ADU/s on average
    assert ramp.next_exposure("L", 0.0, 1e9) == math.inf  # more than the whole dusk can give


def test_a_saturated_test_frame_converges():
    sky = Sky("dusk", 180.0, 2e4)
    ramp = SkyRamp("dusk", 180.0, bias_adu=BIAS, saturation_adu=SATURATION)
    now, adus = 0.0, []
    ramp.observe("L", now, 10.0, sky.frame("L", now, 10.0))  # far too long: clipped
    now = 11.0
    for _ in range(6):
        d = decide(ramp, "L", now, TARGET, LOW, HIGH, 0.1, 30.0)
        assert d.kind == "expose"
        adu = sky.frame("L", now, d.exposure)
        ramp.observe("L", now, d.exposure, adu)
        adus.append(adu)
        now += d.exposure + 1.0
    assert all(LOW <= a <= HIGH for a in adus[2:])


def test_test_exposure_scales_another_filters_rate():
    sky = Sky("dusk", 180.0, 2e4, noise=0.0)
    ramp = SkyRamp("dusk", 180.0)
    assert test_exposure(ramp, "L", 0.1, 30.0, None) == 0.1
    assert test_exposure(ramp, "L", 0.1, 30.0, 2.0) == 2.0
    assert test_exposure(ramp, "L", 0.1, 30.0, 99.0) == 30.0
    ramp.observe("Ha", 0.0, 5.0, sky.frame("Ha", 0.0, 5.0))
    needed = ramp.next_exposure("Ha", 10.0, TARGET)
    # another key known: its exposure for the target now, times the dusk's test scale (the next filter is brighter)
    assert test_exposure(ramp, "B", 0.1, 30.0, 3.0, now=10.0, target_adu=TARGET) == pytest.approx(0.5 * needed)


# -- wait and give up, with the setting named -------------------------------------------------------

def _ramp_at(direction: str, rate: float) -> SkyRamp:
    ramp = SkyRamp(direction, 180.0)
    ramp.observe("R", -0.5, 1.0, rate)  # mid-time 0: the rate there (a 1 s frame averages it)
    return ramp


def test_dusk_too_dark_gives_up_naming_max_exposure():
    ramp = _ramp_at("dusk", 400.0)  # needs about a minute: > 30 s
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d.kind == "give_up"
    assert "flats.max_exposure 30 s" in d.reason and "needs" in d.reason


def test_dawn_too_bright_gives_up_naming_min_exposure():
    ramp = _ramp_at("dawn", 1e6)  # 0.1 s gives 100000 ADU
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d.kind == "give_up"
    assert "flats.min_exposure 0.1 s" in d.reason


def test_dusk_too_bright_waits_until_the_shortest_exposure_fits():
    ramp = _ramp_at("dusk", 1e6)
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d.kind == "wait" and "flats.min_exposure" in d.reason
    # at `until` the sky (halving every 180 s) gives the target at 0.1 s
    assert 1e6 * 2 ** (-d.until / 180.0) * 0.1 == pytest.approx(TARGET, rel=0.01)
    after = decide(ramp, "R", d.until, TARGET, LOW, HIGH, 0.1, 30.0)
    assert after.kind == "expose" and after.exposure == pytest.approx(0.1, rel=0.02)


def test_dawn_too_dark_waits_until_the_longest_exposure_fits():
    ramp = _ramp_at("dawn", 100.0)
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d.kind == "wait" and "flats.max_exposure" in d.reason and d.until > 0


def test_a_wait_past_the_deadline_gives_up():
    ramp = _ramp_at("dusk", 1e6)
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0, deadline=60.0)
    assert d.kind == "give_up" and "flats.min_exposure" in d.reason and "window" in d.reason
    ramp = _ramp_at("dawn", 100.0)
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0, deadline=60.0)
    assert d.kind == "give_up" and "flats.max_exposure" in d.reason


def test_clamped_while_the_band_is_reachable():
    ramp = _ramp_at("dusk", TARGET / 0.1 * 1.15)  # the target wants 0.087 s; 0.1 s gives 1.15x: in band
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d == Decision("expose", 0.1, reason=d.reason) and "flats.min_exposure" in d.reason
    k = math.log(2) / 180.0
    ramp = _ramp_at("dusk", TARGET * 0.85 * k / -math.expm1(-k * 30.0))  # 30 s gives 0.85 of the target
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d.kind == "expose" and d.exposure == 30.0


def test_no_frame_yet_asks_for_a_test_frame():
    ramp = SkyRamp("dusk", 180.0)
    d = decide(ramp, "R", 0.0, TARGET, LOW, HIGH, 0.1, 30.0)
    assert d.kind == "expose" and d.exposure == 0.1 and "test" in d.reason


def test_bad_direction():
    with pytest.raises(ValueError, match="dusk or dawn"):
        SkyRamp("noon", 180.0)
