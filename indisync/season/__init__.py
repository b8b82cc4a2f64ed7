"""A season, not a night: projects, targets and per-OTA goals kept in SQLite (store), when each
target may be imaged (constraints, ephem), and the pure scheduler that picks the next one.

``model`` and ``settings`` are plain dataclasses (stdlib only): config.py loads them cheaply.
numpy and astropy are imported only by ``ephem`` and inside the scheduler's planning functions."""
