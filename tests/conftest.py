"""Fixtures that start real servers (indiserver with the INDI simulators, mosquitto) on free ports.

Servers are always stopped, even when a test fails; when one fails, the server's log is printed
in the test report (the "Captured stdout teardown" section).
"""

from __future__ import annotations

import pytest

from indisync.sim.indi import ALL_SIMULATORS, IndiServer


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request) -> bool:
    return any(getattr(request.node, f"rep_{w}", None) is not None and getattr(request.node, f"rep_{w}").failed
               for w in ("setup", "call"))


def attach_log_on_failure(request, name: str, text_fn) -> None:
    if _failed(request):
        print(f"\n----- {name} log (last 4000 chars) -----\n{text_fn()[-4000:]}")


@pytest.fixture
def indi_sim(request):
    """A private indiserver running all five simulators (ccd, focus, wheel, telescope, guide)."""
    server = IndiServer(drivers=ALL_SIMULATORS)
    server.start()
    try:
        yield server
    finally:
        attach_log_on_failure(request, "indiserver", server.log_text)
        server.cleanup()


@pytest.fixture
def indi_config(indi_sim):
    """An IndiConfig pointing at the ``indi_sim`` server."""
    from indisync.config import IndiConfig

    return IndiConfig(host=indi_sim.host, port=indi_sim.port, connect_timeout=10, property_timeout=10)
