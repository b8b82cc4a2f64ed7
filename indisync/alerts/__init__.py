"""Alarms that reach a phone (apprise URLs in ``alerts.urls``), deduplicated and sent from a worker.

Importing this package does not import apprise; the sender loads it when it first sends.
"""

from .alerter import Alarm, Alerter, apprise_notify, redact
from .settings import LEVELS, AlertSettings

__all__ = ["LEVELS", "Alarm", "AlertSettings", "Alerter", "apprise_notify", "redact"]
