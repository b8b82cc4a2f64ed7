"""The light panel's brightness search (calib.panel) against a synthetic panel and camera."""

from __future__ import annotations

import pytest

from indisync.calib.panel import PanelTraining, train_panel
from indisync.errors import CalibError, IndisyncError

FULL = 65535.0
TARGET, LOW, HIGH = 0.4 * FULL, 0.3 * FULL, 0.5 * FULL


class Panel:
    """ADU = bias + per_unit * brightness (rounded to the panel's step) * exposure, clipped."""

    def __init__(self, per_unit: float, step: float | None = None, bias: float = 4.5):
        self.per_unit, self.step, self.bias = per_unit, step, bias
        self.calls: list[tuple[float, float]] = []

    def __call__(self, brightness: float, exposure: float) -> float:
        self.calls.append((brightness, exposure))
        if self.step:
            brightness = round(brightness / self.step) * self.step
        return min(self.bias + self.per_unit * brightness * exposure, 65000.0)


def _train(panel, exposure=2.0, rng=(0, 255), min_e=0.1, max_e=30.0, **kw):
    return train_panel(panel, rng, exposure, TARGET, LOW, HIGH, min_e, max_e, **kw)


@pytest.mark.parametrize("per_unit", [30.0, 100.0, 1000.0, 5000.0])
def test_bisection_lands_in_band_and_on_target(per_unit):
    panel = Panel(per_unit)
    result = _train(panel)
    assert isinstance(result, PanelTraining)
    assert LOW <= result.adu <= HIGH
    assert result.adu == pytest.approx(TARGET, rel=0.02)  # the exposure scaled onto the target, then checked
    assert panel(result.brightness, result.exposure) == pytest.approx(result.adu)
    assert result.steps == len(panel.calls) - 1 <= 12
    assert 0.1 <= result.exposure <= 30.0


def test_a_stepped_panel_tries_its_own_steps():
    panel = Panel(400.0, step=10)
    result = _train(panel, step=10)
    assert result.brightness % 10 == 0
    assert all(b % 10 == 0 or b == 255 for b, _ in panel.calls)  # its steps, or the range's ends
    assert LOW <= result.adu <= HIGH


def test_too_dim_at_full_brightness_uses_a_longer_exposure():
    panel = Panel(10.0)  # 255 * 2 s * 10 = 5100 ADU: a longer exposure (10 s) gets there
    result = _train(panel)
    assert result.brightness == 255 and result.exposure > 2.0
    assert LOW <= result.adu <= HIGH


def test_too_dim_even_at_the_longest_exposure_is_a_clear_error():
    panel = Panel(1.0)  # 255 * 30 s = 7650 ADU at most
    with pytest.raises(CalibError, match="too dim.*flats.max_exposure"):
        _train(panel)
    assert issubclass(CalibError, IndisyncError)


def test_too_bright_even_at_the_lowest_brightness():
    panel = Panel(1e6)
    with pytest.raises(CalibError, match="too bright.*flats.min_exposure"):
        _train(panel, rng=(10, 255))


def test_too_bright_at_the_lowest_brightness_uses_a_shorter_exposure():
    panel = Panel(1500.0)  # brightness 10 at 2 s: 30000 ADU, at 1 s... in band anyway; start at 20
    result = _train(panel, rng=(20, 255))
    assert result.brightness == 20 and result.exposure < 2.0
    assert LOW <= result.adu <= HIGH


def test_the_search_is_bounded():
    calls = []

    def erratic(brightness, exposure):  # a panel that never answers the same: never in band
        calls.append(brightness)
        return 0.0 if len(calls) % 2 else 65000.0

    with pytest.raises(CalibError):
        _train(erratic, max_steps=6)
    assert len(calls) <= 6


class LateLight(Panel):
    """The first frame sees the panel not yet at full light (a tenth of it): the longer exposure scaled
    from it saturates. Before the fix that raised 'too dim: 65000 ADU ... below the band'."""

    def __call__(self, brightness: float, exposure: float) -> float:
        adu = super().__call__(brightness, exposure)
        return self.bias + (adu - self.bias) / 10.0 if len(self.calls) == 1 else adu


def test_a_saturated_reading_after_a_dim_one_is_scaled_back_into_the_band():
    panel = LateLight(50.0)  # 255 * 2 s * 50 = 25500 ADU at full light: in the band; the first reads 2550
    result = _train(panel)
    assert LOW <= result.adu <= HIGH and result.brightness == 255
    assert any(adu >= 65000 for adu in (panel(b, e) for b, e in panel.calls[1:2]))  # it did saturate once


def test_an_error_says_above_when_the_last_reading_was_above_the_band():
    class Jumpy(Panel):  # far below at first, then far above whatever the exposure
        def __call__(self, brightness, exposure):
            super().__call__(brightness, exposure)
            return 100.0 if len(self.calls) == 1 else 65000.0

    with pytest.raises(CalibError, match="above the band"):
        _train(Jumpy(1.0))
