"""A weather station (INDI weather interface): its overall status, readings, and how fresh they are.

WEATHER_STATUS is a light vector, one light per parameter; the worst light is the station's status
(Alert beats Busy beats Ok; Busy is INDI's "warning"). A station that stops sending is as unsafe as
one in Alert, so ``last_update`` says when any WEATHER_* property last changed: the night machine
judges staleness from it (safety.stale_after), not this class.
"""

from __future__ import annotations

import time

from ..errors import DeviceError
from .device import IndiDevice
from .props import set_number, set_switch

STATUS_RANK = {"Idle": 0, "Ok": 1, "Busy": 2, "Alert": 3}  # INDI light states, worst last
STATUS_NAMES = {"Ok": "ok", "Busy": "busy", "Alert": "alert"}


class Weather(IndiDevice):
    key_properties = ("WEATHER_STATUS",)

    @property
    def status(self) -> str | None:
        """"ok", "busy" (a warning) or "alert", the worst of WEATHER_STATUS's lights; None: no data
        (the device is gone, or says Idle: not measured)."""
        snap = self.client.snapshot(self.name, "WEATHER_STATUS")
        if snap is None:
            return None
        states = list(snap.values.values()) or [snap.state]
        worst = max(states, key=lambda s: STATUS_RANK.get(s, 0))
        return STATUS_NAMES.get(worst)

    @property
    def lights(self) -> dict[str, str]:
        """Each parameter's own light, e.g. {"WEATHER_RAIN_HOUR": "Alert", ...}."""
        snap = self.client.snapshot(self.name, "WEATHER_STATUS")
        return {} if snap is None else dict(snap.values)

    @property
    def parameters(self) -> dict[str, float]:
        """The readings (WEATHER_PARAMETERS), e.g. {"WEATHER_TEMPERATURE": 15.0, ...}; {} without data."""
        snap = self.client.snapshot(self.name, "WEATHER_PARAMETERS")
        return {} if snap is None else dict(snap.values)

    @property
    def last_update(self) -> float | None:
        """time.monotonic() of the last WEATHER_* property update seen from the station; None: never
        (or the device is gone)."""
        return self.client.last_update(self.name, prefix="WEATHER_")

    def set_update_period(self, seconds: float) -> None:
        """How often the station refreshes its readings (WEATHER_UPDATE.PERIOD), read back."""
        set_number(self.client, self.name, "WEATHER_UPDATE", {"PERIOD": float(seconds)}, self.property_timeout)
        snap = self.client.snapshot(self.name, "WEATHER_UPDATE")
        if snap is None or abs(snap.values.get("PERIOD", -1) - seconds) > 1e-6:
            raise DeviceError(f"{self.name} kept WEATHER_UPDATE.PERIOD "
                              f"{None if snap is None else snap.values.get('PERIOD')} instead of {seconds:g}")

    def refresh(self) -> None:
        """Ask for fresh readings now (WEATHER_REFRESH), where the station offers it."""
        if self.client.snapshot(self.name, "WEATHER_REFRESH") is not None:
            set_switch(self.client, self.name, "WEATHER_REFRESH", ["REFRESH"], self.property_timeout)


def age_s(weather: Weather | None, now: float | None = None) -> float | None:
    """Seconds since the station last said anything; None when it never did."""
    last = None if weather is None else weather.last_update
    return None if last is None else (time.monotonic() if now is None else now) - last
