"""Fixtures that start real servers (indiserver with the INDI simulators, mosquitto) on free ports.

Servers are always stopped, even when a test fails; when one fails, the server's log is printed
in the test report (the "Captured stdout teardown" section).
"""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import settings as hypothesis_settings

from indisync.sim.collector import MqttCollector  # noqa: F401 - tests import it from here (the benchmarks use it too)
from indisync.sim.indi import ALL_SIMULATORS, IndiServer

# Property tests draw the same examples on every run, so CI is never red because of a draw nobody
# saw before. HYPOTHESIS_EXPLORE=1 ./scripts/test.sh -m "not integration" searches afresh; add what
# it finds as an @example.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore")
hypothesis_settings.load_profile("explore" if os.environ.get("HYPOTHESIS_EXPLORE") else "repeatable")


@contextlib.contextmanager
def stopped_at_the_end(request, rig):
    """For a module-scoped rig fixture: yield ``rig``, stop it at the end, and print every node's
    log first when a test of the module failed meanwhile."""
    failures = request.session.testsfailed
    try:
        yield rig
    finally:
        if request.session.testsfailed > failures:
            print(rig.logs())
        rig.stop()


@contextlib.contextmanager
def master_command_client(cfg):
    """A CommandClient that speaks as "master" over a transport of its own, connected; closed at the end."""
    import time
    import uuid

    from indisync.protocol.commands import CommandClient
    from indisync.protocol.topics import Topics
    from indisync.protocol.transport import MqttTransport

    transport = MqttTransport(cfg, f"test-master-{uuid.uuid4().hex[:8]}")
    client = CommandClient(transport, Topics(cfg.topic_prefix, cfg.discovery_prefix), "master", resend_every=1.0)
    transport.start()
    try:
        assert transport.wait_connected(10), "the test master could not connect"
        time.sleep(0.2)  # let the SUBACK come back before the test sends
        yield client
    finally:
        client.close()
        transport.stop()


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


# ---- mosquitto (protocol layer) ------------------------------------------------------------
@pytest.fixture
def mosquitto(request):
    """A private anonymous mosquitto on a free loopback port (``.port``, ``.restart()``, ``.log_text()``)."""
    from indisync.sim.broker import Mosquitto

    broker = Mosquitto()
    broker.start()
    try:
        yield broker
    finally:
        attach_log_on_failure(request, "mosquitto", broker.log_text)
        broker.close()


@pytest.fixture
def mqtt_config(mosquitto):
    """An MqttConfig pointing at the ``mosquitto`` broker, with short liveness timings for tests."""
    from indisync.config import MqttConfig

    return MqttConfig(host=mosquitto.host, port=mosquitto.port, keepalive=2, heartbeat=0.5, dead_after=2.0)


@pytest.fixture
def demo_nodes(mosquitto):
    """Start ``python -m indisync.protocol.demo_node`` children: ``demo_nodes("ota2", "--keepalive", "2")``."""
    import subprocess
    import sys

    procs = []

    def start(name, *extra):
        proc = subprocess.Popen(
            [sys.executable, "-m", "indisync.protocol.demo_node", "--port", str(mosquitto.port), "--name", name, *extra],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline().strip()
        assert line == "ready", f"demo node {name} said {line!r}"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
