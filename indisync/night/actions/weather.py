"""The weather watch: poll the weather device, post every new update and its loss to the night."""

from __future__ import annotations

from ..events import WeatherLost, WeatherUpdate


def read_weather(rig, cfg):
    """(the weather device or None, its WEATHER_STATUS or None, why there is none or None). Never
    raises: a lost indiserver is a lost weather device, which is unsafe."""
    try:
        weather = getattr(rig.devices(), "weather", None)
        if weather is None:
            return None, None, f"no weather device {cfg.indi.weather!r}"
        status = weather.status
        if status is None:
            return weather, None, f"{cfg.indi.weather} has no WEATHER_STATUS (driver stopped?)"
        return weather, status, None
    except Exception as exc:  # noqa: BLE001 - an indiserver lost is a weather device lost
        return None, None, f"indiserver: {exc}"


def first_reading(rig, cfg) -> WeatherUpdate | WeatherLost:
    """The weather before the night's first step (a restart in the rain parks before anything opens)."""
    _, status, why = read_weather(rig, cfg)
    return WeatherLost(reason=why[:300]) if why is not None else WeatherUpdate(status=status)


def watch_weather(night) -> None:
    """Runs until the night ends or the process stops; never raises."""
    rig, cfg = night.rig, night.cfg
    last_seen = None
    lost = None
    while not rig.stop_event.is_set() and not night.finished.is_set():
        weather, status, why = read_weather(rig, cfg)
        if why is not None:
            if lost != why:
                night.post(WeatherLost(reason=why[:300]))
                lost = why
        else:
            updated = getattr(weather, "last_update", None)
            if updated is not None and (updated != last_seen or lost is not None):
                night.post(WeatherUpdate(status=status))  # a new update (or the device is back)
                last_seen = updated
            lost = None
        rig.stop_event.wait(cfg.safety.poll)
