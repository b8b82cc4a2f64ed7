"""Give freed heap memory back to the system between the big steps of a run (issue 13).

A frame's scratch arrays (~22 MB at 1280x1024, far more at 26 MP) are freed when its measurement
returns, but glibc keeps most of such memory inside the process: a node would then hold its
measuring peak for good, and the next big step (the V-curve plot, the next frame) would come
on top of it. ``release_free_memory`` asks glibc (``malloc_trim``) to return the free pages; it
changes no value and does nothing where the C library has no such call (musl, macOS).
"""

from __future__ import annotations

_TRIM: list = []  # [malloc_trim or None], looked up once


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim():
    if not _TRIM:
        try:
            import ctypes

            _TRIM.append(getattr(ctypes.CDLL(None), "malloc_trim", None))
        except (OSError, AttributeError):
            _TRIM.append(None)
    return _TRIM[0]
