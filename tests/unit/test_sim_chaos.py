"""The chaos night's judges over plain data: a repeated or skipped filter, a command run twice, a
truncated FITS file, a log line's time."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from indisync.sim.chaos import duplicates, first_after, log_times, lost_exposures, partial_file, rotation_errors
from indisync.sim.report import FrameInfo

T0 = datetime(2026, 12, 3, 22, 0, 0)


def frames(node: str, filters: list[str], ids: list[int] | None = None) -> list[FrameInfo]:
    ids = ids or list(range(1, len(filters) + 1))
    return [FrameInfo(Path(f"{node}_{i}.fits"), node, f, 1, e, T0 + timedelta(seconds=10 * i), 300.0)
            for i, (f, e) in enumerate(zip(filters, ids))]


def test_rotation_errors_count_a_skipped_and_a_repeated_filter():
    cycle = ["Red", "Green", "Blue"]
    assert rotation_errors(frames("s", ["Green", "Blue", "Red", "Green"]), cycle) == 0
    assert rotation_errors(frames("s", ["Red", "Blue", "Red"]), cycle) == 1  # Green skipped
    assert rotation_errors(frames("s", ["Red", "Red", "Green"]), cycle) == 1  # Red repeated
    assert rotation_errors(frames("s", ["Red", "Luminance", "Green"]), cycle) == 1  # not in the cycle


def test_duplicates_and_lost_exposures_by_master_exposure_id():
    master = frames("master", ["L"] * 4, [1, 2, 3, 4])
    slave = frames("slave1", ["Red", "Green", "Green", "Blue"], [1, 2, 2, 4])
    assert duplicates(master + slave) == 1
    assert lost_exposures(master, slave) == [3]


def test_partial_file_finds_a_truncated_frame(tmp_path):
    path = tmp_path / "f.fits"
    fits.PrimaryHDU(np.zeros((64, 64), dtype=np.uint16)).writeto(path)
    assert partial_file(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    assert "header announces" in partial_file(path) or "unreadable" in partial_file(path)
    path.write_bytes(b"not a fits file at all")
    assert partial_file(path).startswith("unreadable")


def test_log_times_reads_the_node_log_format():
    text = ("2026-12-03 06:40:45,021 ERROR indisync.node.supervisor: lost indiserver at 127.0.0.1:1; reconnecting\n"
            "2026-12-03 06:40:51,163 INFO indisync.node.supervisor: reconnected to indiserver\n")
    (lost,) = log_times(text, "lost indiserver")
    assert abs(log_times(text, "reconnected")[0] - lost - 6.142) < 1e-6
    assert first_after([1.0, 5.0, 9.0], 4.0) == 5.0 and first_after([1.0], 4.0) is None


def test_an_exposure_aborted_by_rain_is_told_apart_from_the_weather_device_going():
    from indisync.sim.chaos import abort_kind, night_moves, unsafe_cause

    recorded = [
        (105.0, {"type": "night_state", "from": "master", "payload": {"from": "imaging", "to": "unsafe",
                                                                       "reason": "weather alert (WEATHER_STATUS)"}}),
        (100.0, {"type": "night_state", "from": "master", "payload": {"from": None, "to": "imaging", "reason": "x"}}),
        (106.0, {"type": "night_state", "from": "slave1", "payload": {"to": "unsafe", "reason": "not the master's"}}),
        (107.0, {"type": "exposure_done", "from": "master", "payload": {"status": "failed"}}),
        (200.0, {"type": "night_state", "from": "master", "payload": {
            "to": "unsafe", "reason": "weather device gone: indiserver: lost"}}),
    ]
    moves = night_moves(recorded)
    assert [m[1] for m in moves] == ["imaging", "unsafe", "unsafe"]  # in time order, the master's only
    assert abort_kind(unsafe_cause(moves, 103.0, 108.0)) == "rain"
    assert unsafe_cause(moves, 110.0, 190.0) is None  # an exposure that failed for another reason
    assert abort_kind(unsafe_cause(moves, 199.0, 203.0)) == "weather device gone"
    assert abort_kind("no weather data for 20 s (safety.stale_after 15 s)") == "weather data stale"
