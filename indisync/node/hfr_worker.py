"""The HFR worker: one small process per slave that measures its frames at a lower CPU priority.

Why a process (issue 18): a slave measures each frame after its expose reply, while the master
is already starting the next exposure. Measured in a thread, star detection held the GIL and a
core when the next ``expose`` command arrived, and the command's way to the camera (paho's network
thread, the handler, the camera start) waited behind it: the start skew's p99 went from 7 to
26 ms with one slave and from 65 to 221 ms with eight. A thread cannot be given a lower priority
that helps under the GIL; a process can. This one runs ``os.nice(slave.measure_nice)``, so the
scheduler hands the CPU to the command path the moment it wakes, and no measurement ever holds
the node's GIL.

The worker is started once, as ``python -m indisync.node.hfr_worker FD NICE``, with one end of a
socket pair (``multiprocessing.connection`` framing) as FD. It imports nothing heavy until its
first frame (numpy, scipy, astropy load then, niced), so an idle slave stays small. Messages:

    parent -> worker   ("settings", AnalysisSettings)            once, first
                       ("job", seq, path, shape, dtype)          then, if shape: the pixels' raw bytes
                       ("stop",)                                 or the socket closing: exit
    worker -> parent   ("ready", pid, niceness)                  once, after the settings
                       ("result", seq, hfr, stars, seconds, problem)

A job names the frame's file (read here, so the slave lets go of the pixels once the frame is
written) or carries the pixels (``shape`` not None). ``problem`` is why the measurement gave no
HFR (the text ``measure_hfr`` logs as a warning in-process); the figures are exactly those of
``indisync.node.imaging.measure_hfr`` on the same pixels, through ``frame_hfr`` below.

Only the standard library is imported at the top: the node imports this module for ``frame_hfr``.
"""

from __future__ import annotations

import math
import os
import sys
import time


def frame_hfr(data, settings) -> tuple[float | None, int | None, str | None]:
    """(median HFR or None, star count, problem) of a light frame's pixels; (None, None, why) if it
    cannot be measured. The one definition of a frame's HFR, in-process and in the worker."""
    from ..analysis.measure import measure_frame  # numpy/scipy: loaded by the first frame

    try:
        measured = measure_frame(data, settings)
    except Exception as exc:  # noqa: BLE001 - a measurement problem must never cost the frame
        return None, None, str(exc) or type(exc).__name__
    stars = measured.star_count
    hfr = measured.median_hfr if stars and math.isfinite(measured.median_hfr) else None
    return hfr, stars, None


def read_pixels(path: str):
    """The pixels of a frame written by ``save_frame`` (its primary HDU), as ``hdu.data`` had them."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.data is not None:
                return hdu.data
    raise ValueError(f"{path}: no image data")


def pixels_from_bytes(raw: bytes, shape, dtype):
    import numpy as np

    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape)


def serve(conn, nice: int) -> int:
    """The worker's loop: lower its priority, then measure jobs until told to stop or orphaned."""
    try:
        niceness = os.nice(nice) if nice else os.nice(0)
    except OSError:  # not allowed to change it: measure anyway, the parent logs the niceness
        niceness = os.nice(0)
    try:
        kind, settings = conn.recv()
        if kind != "settings":
            return 2
        conn.send(("ready", os.getpid(), niceness))
        while True:
            message = conn.recv()
            if message[0] != "job":
                return 0
            _, seq, path, shape, dtype = message
            raw = conn.recv_bytes() if shape is not None else None
            started = time.monotonic()
            try:
                data = pixels_from_bytes(raw, shape, dtype) if raw is not None else read_pixels(path)
                hfr, stars, problem = frame_hfr(data, settings)
            except Exception as exc:  # noqa: BLE001 - an unreadable file is a result, not the end
                hfr, stars, problem = None, None, f"{type(exc).__name__}: {exc}"
            data = raw = None
            _release_free_memory()
            conn.send(("result", seq, None if hfr is None else float(hfr), None if stars is None else int(stars),
                       time.monotonic() - started, problem))
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the node went away: nothing to report to
        return 0


def _release_free_memory() -> None:
    if "indisync.analysis.memory" in sys.modules or "numpy" in sys.modules:
        from ..analysis.memory import release_free_memory

        release_free_memory()


def main(argv: list[str]) -> int:
    from multiprocessing.connection import Connection

    if len(argv) != 2:
        print("usage: python -m indisync.node.hfr_worker FD NICE (started by the slave, not by hand)",
              file=sys.stderr)
        return 2
    conn = Connection(int(argv[0]))
    try:
        return serve(conn, int(argv[1]))
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
