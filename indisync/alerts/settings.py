"""Settings of the alarms (config section ``alerts``): where they go and how often they may repeat.

Importable without apprise: config.py assembles it cheaply; the sender loads apprise in its worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError

LEVELS = ("info", "warning", "critical")  # in rising order


@dataclass
class AlertSettings:
    # apprise URLs, one per service: "ntfy://ntfy.sh/my-rig", "mailtos://user:pass@example.com", ...
    urls: list[str] = field(default_factory=list)
    min_level: Literal["info", "warning", "critical"] = "warning"  # below this: logged and on MQTT, not sent
    repeat_s: float = 1800.0  # one alarm per cause per this many seconds (repeats are counted, not sent)
    node_offline_s: float = 300.0  # a node offline this long while the night is active raises an alarm
    # the night in a state with the mount out, inside its window, with no new state and no frame for this
    # long (plus the frame under way) is stuck: an alarm (indisync.night.alarms)
    night_stuck_s: float = 1800.0
    send_timeout_s: float = 30.0  # seconds one service may take to answer before the worker moves on
    queue_size: int = 100  # alarms waiting for the sender; beyond this they are logged and counted, not sent

    def validate(self) -> None:
        for key in ("repeat_s", "node_offline_s", "night_stuck_s", "send_timeout_s"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ConfigValueError(key, f"got {value}; allowed: a positive number of seconds")
        if not 1 <= self.queue_size <= 100_000:
            raise ConfigValueError("queue_size", f"got {self.queue_size}; allowed: 1..100000")
        for i, url in enumerate(self.urls):
            if "://" not in url:
                raise ConfigValueError(f"urls[{i}]", f"got {url!r}; an apprise URL such as ntfy://ntfy.sh/my-topic")
