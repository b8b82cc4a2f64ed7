"""Star detection and half-flux-radius measurement: numpy, scipy and photutils only; no hardware, no MQTT.

    from indisync.analysis import AnalysisSettings, measure_frame
    result = measure_frame(hdu.data, AnalysisSettings())
    result.star_count, result.median_hfr, result.hfr_spread

The HFR definition is in ``indisync.analysis.hfr``; the thresholds in ``AnalysisSettings``.
"""

from .measure import FrameMeasurement, StarMeasurement, measure_frame
from .settings import AnalysisSettings

__all__ = ["AnalysisSettings", "FrameMeasurement", "StarMeasurement", "measure_frame"]
