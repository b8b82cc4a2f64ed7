"""A small JPEG of a saved frame for Home Assistant's ``image`` entity: every k-th pixel (no
resampling cost on a Pi), a percentile stretch, a square-root curve for faint stars.

numpy, astropy and Pillow are imported inside the function (the node imports this module at start).
"""

from __future__ import annotations

import io
from pathlib import Path

MAX_SIDE = 480  # px of the preview's longer side
LOW_PCT, HIGH_PCT = 25.0, 99.7  # sky to bright stars


def jpeg_preview(path: str | Path, max_side: int = MAX_SIDE, quality: int = 80) -> bytes:
    import numpy as np
    from astropy.io import fits
    from PIL import Image

    # Raw stored values (BZERO unapplied) keep the file memory-mapped; the shift is monotonic, so
    # the percentile stretch below gives the same picture.
    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
        data = hdul[0].data
        if data is None or data.ndim < 2:
            raise ValueError(f"{path}: no 2-D image to preview")
        if data.ndim > 2:
            data = data[0]
        step = max(1, int(np.ceil(max(data.shape) / max_side)))
        small = np.asarray(data[::step, ::step], dtype=np.float32)
    lo, hi = np.percentile(small, [LOW_PCT, HIGH_PCT])
    scaled = np.sqrt(np.clip((small - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0))
    image = Image.fromarray((scaled * 255).astype(np.uint8), mode="L")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
