"""Guide-star detection, choice and centroids on synthetic frames with known star positions."""

import numpy as np
import pytest

from indisync.guiding.star import choose_guide_stars, find_stars, measure_star, robust_background


def render(shape, stars, sigma=2.0, sky=100.0, noise=5.0, seed=0, saturate=65535):
    """stars: (x, y, peak) in pixels/ADU; Gaussian PSFs on a noisy sky, clipped like a 16-bit sensor."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = np.full(shape, sky, dtype=float)
    for x, y, peak in stars:
        img += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    img += rng.normal(0, noise, shape)
    return np.clip(img, 0, saturate).astype(np.uint16)


def test_centroid_recovers_subpixel_position():
    for x, y in [(50.3, 40.7), (61.85, 55.12), (45.5, 60.25)]:
        img = render((100, 120), [(x, y, 2000)], seed=int(x * 100))
        s = measure_star(img, x + 4, y - 3, 12, min_snr=8)
        assert s is not None
        assert abs(s.x - x) < 0.08 and abs(s.y - y) < 0.08
        assert not s.saturated and s.snr > 50


def test_centroid_ignores_a_neighbour_outside_its_patch():
    img = render((100, 100), [(40, 50, 2000), (58, 50, 3000)])
    s = measure_star(img, 41, 50, 8, min_snr=8)
    assert s is not None and abs(s.x - 40) < 0.15


def test_nothing_there_or_noise_far_above_the_star_is_none():
    assert measure_star(render((80, 80), []), 40, 40, 15, min_snr=8) is None
    noisy = render((80, 80), [(40, 40, 300)], noise=2000, sky=5000)
    assert measure_star(noisy, 40, 40, 15, min_snr=8) is None
    assert measure_star(render((80, 80), [(40, 40, 300)]), 40, 40, 15, min_snr=8) is not None


def test_box_off_the_frame_is_none():
    img = render((50, 50), [(25, 25, 1000)])
    assert measure_star(img, -40, -40, 10, min_snr=8) is None


def test_hot_pixel_is_not_a_star():
    img = render((60, 60), [])
    img[30, 30] = 60000
    assert measure_star(img, 30, 30, 10, min_snr=8) is None


def test_saturated_star_is_flagged_and_never_chosen():
    stars = [(50, 50, 200000), (120, 60, 3000), (80, 130, 1500)]
    img = render((180, 180), stars)
    found = find_stars(img, min_snr=8, radius=12)
    assert len(found) == 3
    sat = [s for s in found if s.saturated]
    assert len(sat) == 1 and abs(sat[0].x - 50) < 0.5
    chosen = choose_guide_stars(found, img.shape, count=5, min_snr=8, edge_margin=20, isolation=15)
    assert [round(s.x) for s in chosen] == [120, 80]  # by SNR, the saturated one left out


def test_choice_rejects_edges_and_crowded_pairs():
    stars = [(10, 90, 3000),  # too close to the edge
             (60, 60, 3000), (68, 62, 1500),  # a pair 8 px apart: both spoiled
             (130, 120, 800)]
    img = render((180, 180), stars)
    found = find_stars(img, min_snr=8, radius=6)
    chosen = choose_guide_stars(found, img.shape, count=5, min_snr=8, edge_margin=20, isolation=15)
    assert [(round(s.x), round(s.y)) for s in chosen] == [(130, 120)]


def test_choice_respects_min_snr_and_count():
    stars = [(40 + 30 * i, 90, 100 * 2**i) for i in range(5)]
    img = render((180, 200), stars, noise=5)
    found = find_stars(img, min_snr=3, radius=10)
    chosen = choose_guide_stars(found, img.shape, count=2, min_snr=3, edge_margin=20, isolation=15)
    assert len(chosen) == 2 and chosen[0].snr >= chosen[1].snr
    assert {round(s.x) for s in chosen} == {160, 130}
    strict = choose_guide_stars(found, img.shape, count=5, min_snr=1e6, edge_margin=20, isolation=15)
    assert strict == []


def test_robust_background_ignores_stars():
    rng = np.random.default_rng(3)
    sky = rng.normal(200, 10, 5000)
    sky[:100] += 5000
    level, noise = robust_background(sky)
    assert level == pytest.approx(200, abs=1.5) and noise == pytest.approx(10, rel=0.15)
