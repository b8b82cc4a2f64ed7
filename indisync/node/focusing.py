"""Autofocus with a node's INDI devices: the focus routine wired to the camera, focuser and HFR.

Shared by `indisync focus` and the node runtime's `autofocus` command, so both run the same thing.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..analysis.measure import measure_frame
from ..config import Config
from ..errors import DeviceError
from ..focus.interfaces import FocusProgress
from ..focus.routine import FocusResult, run_autofocus


class _LightFrames:
    """The camera as the focus routine sees it: light frames only, returned as pixel arrays."""

    def __init__(self, camera):
        self.camera = camera

    def expose(self, seconds: float, binning: int = 1):
        return self.camera.expose(seconds, binning, "light").data


def autofocus_with_devices(
    devices,
    cfg: Config,
    progress: Callable[[FocusProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    metadata: dict | None = None,
    output_dir: str | None = None,
) -> FocusResult:
    if devices.camera is None or devices.focuser is None:
        raise DeviceError("autofocus needs a camera and a focuser; check indi.camera and indi.focuser in the config")
    settings = cfg.focus if output_dir is None else dataclasses.replace(cfg.focus, output_dir=output_dir)
    meta = {"camera": devices.camera.name, "focuser": devices.focuser.name, **(metadata or {})}
    if devices.filter_wheel is not None:
        meta.setdefault("filter", devices.filter_wheel.current)
    temperature = devices.focuser.temperature
    if temperature is not None:
        meta.setdefault("temperature", temperature)
    return run_autofocus(
        _LightFrames(devices.camera),
        devices.focuser,
        lambda data: measure_frame(data, cfg.analysis),
        settings,
        progress=progress,
        should_stop=should_stop,
        metadata=meta,
    )
