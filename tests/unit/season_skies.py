"""Fixed nights at 48° N shared by the season's unit tests (astropy offline; no test depends on the
time of day or the date): import the names and fixtures you use."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from indisync.night.settings import SiteSettings
from indisync.season.ephem import sky_for_night

SITE = SiteSettings(latitude=48.0, longitude=11.0, elevation=500.0, timezone="Europe/Berlin")


def epoch(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def march1():
    return sky_for_night(SITE, epoch(2027, 3, 1, 12))


@pytest.fixture(scope="module")
def full_moon():
    return sky_for_night(SITE, epoch(2027, 3, 21, 12))
