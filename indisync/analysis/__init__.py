"""Star detection and half-flux-radius measurement: numpy, scipy and photutils only; no hardware, no MQTT.

    from indisync.analysis import AnalysisSettings, measure_frame
    result = measure_frame(hdu.data, AnalysisSettings())
    result.star_count, result.median_hfr, result.hfr_spread

The HFR definition is in ``indisync.analysis.hfr``; the thresholds in ``AnalysisSettings``.

The measuring names are loaded on first use (PEP 562): config.py imports ``analysis.settings``,
and that must not cost the ~2.5 s and ~90 MB of importing photutils and scipy.
"""

from .settings import AnalysisSettings

__all__ = ["AnalysisSettings", "FrameMeasurement", "StarMeasurement", "measure_frame"]

_FROM_MEASURE = ("FrameMeasurement", "StarMeasurement", "measure_frame")


def __getattr__(name: str):
    if name in _FROM_MEASURE:
        from . import measure

        return getattr(measure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
