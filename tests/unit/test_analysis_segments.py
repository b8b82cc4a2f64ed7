"""Our 8-connected source labelling gives the same sources as photutils' detect_sources, which
indisync no longer imports (issue 13: photutils alone costs ~75 MB of RSS on a node)."""

from __future__ import annotations

import numpy as np
import pytest

from indisync.analysis.detection import detect_sources
from indisync.analysis.synthetic import noisy_frame, random_stars, render_stars


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("npixels", [1, 5, 20])
def test_same_sources_as_photutils(seed, npixels):
    photutils = pytest.importorskip("photutils.segmentation")
    rng = np.random.default_rng(seed)
    shape = (384, 384)
    image = noisy_frame(render_stars(shape, random_stars(rng, shape, 60, sigma=1.5 + seed)), rng).astype(np.float32)
    image -= 1200
    theirs = photutils.detect_sources(image, 30.0, npixels)
    ours = detect_sources(image, 30.0, npixels)
    assert (theirs is None) == (ours is None)
    if ours is None:
        return
    assert list(ours.labels) == list(range(1, len(ours.labels) + 1))
    assert np.array_equal(theirs.data > 0, ours.data > 0)
    assert sorted(theirs.areas) == sorted(ours.areas)
    pairs = set(zip(theirs.data.ravel().tolist(), ours.data.ravel().tolist()))
    assert len(pairs) == len(ours.labels) + 1  # one-to-one: the same partition into sources


def test_nothing_above_threshold_or_too_small_is_none():
    image = np.zeros((32, 32), dtype=np.float32)
    assert detect_sources(image, 1.0, 1) is None
    image[5, 5] = 10
    assert detect_sources(image, 1.0, 2) is None
    found = detect_sources(image, 1.0, 1)
    assert found is not None and list(found.areas) == [1]

