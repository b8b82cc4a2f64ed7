"""What the guard's integration test and its benchmark (benchmarks/guard.py) share: a simulated rig
with the Telescope, Dome, Weather and CCD Simulators, a private mosquitto and a real `indisync run`
master (indisync.sim.rig), a real `indisync guard` process on the master's config, a local HTTP
endpoint for apprise's ``json://`` URL, and reads of the guard's MQTT and of the rig's devices
(afresh from the server).

The site is one where it is local midnight now (indisync.sim.night), so the sun never decides.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..config import IndiConfig, MqttConfig
from ..protocol import messages
from .collector import MqttCollector
from .indi import _read_vector
from .night import DOME, LATITUDE, MOUNT, WEATHER, mount_parked_now, prepare_dome, prepare_mount, shutter_closed, \
    switch_vector
from .rig import SimRig
from .waiting import wait_until

GUARD = "guard"  # guard.name
CAMERA = "CCD Simulator"  # the master's indi.camera: the guard aborts its exposure when it acts


# ---- a real HTTP endpoint for apprise's json:// ---------------------------------------------------------
class Inbox:
    """A local HTTP server recording every POST body (apprise's json:// notification) and when it came
    (``arrivals``: (time.monotonic(), body))."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.arrivals: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with inbox.cond:
                    try:
                        body = json.loads(data)
                    except ValueError:
                        body = {"raw": data.decode("utf-8", "replace")}
                    inbox.bodies.append(body)
                    inbox.arrivals.append((time.monotonic(), body))
                    inbox.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="inbox", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The apprise URL that posts here."""
        return f"json://127.0.0.1:{self.port}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- the rig and the guard --------------------------------------------------------------------------
def make_rig(workdir, lon, ra, dec, grace, urls=(), safety=None) -> SimRig:
    """A master-only rig (Weather and Dome Simulators beside the master's own) imaging 3 s frames of a
    target at (ra, dec), the guard configured with ``grace`` in the master's config; ``urls``: alerts.urls."""
    night = {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False}
    sections = {
        "site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0}, "night": night,
        "indi": {"weather": WEATHER, "dome": DOME},
        "safety": {"safe_for": 600.0, "stale_after": 10.0, "poll": 0.2, **(safety or {})},
        "guard": {"name": GUARD, "grace": grace, "interval": 0.5, "retry": 3.0, "publish_every": 2.0},
        "alerts": {"urls": list(urls), "min_level": "warning", "send_timeout_s": 10.0},
    }
    return SimRig(
        slaves=0, time_factor=1.0, workdir=workdir / "rig",
        master_drivers=("indi_simulator_weather", "indi_simulator_dome"), master_sections=sections,
        master_section={"target": {"name": "GUARD", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 3.0,
                                                "repeat": 50}]},
                        "refocus": {"after_batch": False}},
    )


@contextlib.contextmanager
def guard_process(rig):
    """`indisync guard` with the master's config (its guard: and alerts: sections), as systemd runs it."""
    log_path = rig.workdir / "guard.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "indisync.cli", "guard", "--config",
                                 str(rig.nodes["master"].config_path)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    proc.log_text = lambda: log_path.read_text(errors="replace")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def guard_states_timed(wire) -> list[tuple[float, dict]]:
    """(arrival time, guard_state payload) of every state the guard published, in order."""
    return [(t, messages.decode(m.payload).payload) for t, m in wire.timed(f"indisync/guard/{GUARD}/state")
            if m.payload]


def guard_states(wire) -> list[dict]:
    """Every guard_state the guard published, in order."""
    return [state for _, state in guard_states_timed(wire)]


def guard_alarms_timed(wire) -> list[tuple[float, dict]]:
    """(arrival time, alarm payload) of every alarm the guard published, in order."""
    return [(t, messages.decode(m.payload).payload) for t, m in wire.timed(f"indisync/guard/{GUARD}/event")]


def guard_alarms(wire) -> list[dict]:
    return [alarm for _, alarm in guard_alarms_timed(wire)]


def logs(rig, guard) -> str:
    return f"{rig.logs()}\n===== guard =====\n{guard.log_text()[-6000:]}"


def night_states(wire) -> list[str]:
    return [env.payload["to"] for _, env in wire.envelopes("night_state", "master")]


def dome_open(indi) -> bool:
    """DOME_SHUTTER says SHUTTER_OPEN, state Ok (read afresh)."""
    got = switch_vector(indi, DOME, "DOME_SHUTTER")
    return got is not None and got[0] == "Ok" and got[1].get("SHUTTER_OPEN", False)


def exposure_state(indi) -> str | None:
    """CCD_EXPOSURE's state (Idle/Ok/Busy/Alert) read from the server afresh."""
    return _read_vector(indi.host, indi.port, CAMERA, "CCD_EXPOSURE", "Number", 2.0).get("state")


def not_safe(indi) -> list[str]:
    """What of the rig is out, read afresh from the server ([]: parked and closed)."""
    problems = []
    if not mount_parked_now(indi):
        problems.append(f"mount not parked (TELESCOPE_PARK {switch_vector(indi, MOUNT, 'TELESCOPE_PARK')})")
    if not shutter_closed(indi):
        problems.append(f"dome not closed (DOME_SHUTTER {switch_vector(indi, DOME, 'DOME_SHUTTER')})")
    return problems


def imaging_with_the_dome_open(rig, wire, guard, timeout=90.0):
    indi = rig.nodes["master"].indi
    wait_until(lambda: "imaging" in night_states(wire) and dome_open(indi) and not mount_parked_now(indi),
               timeout, "the night imaging with the dome open and the mount out", 0.2,
               detail=lambda: logs(rig, guard))


def imaging_under_a_guard(stack: contextlib.ExitStack, rig, lon: float, dec: float):
    """The master imaging with the mount out and the dome open, the guard watching and seeing it online:
    (indi, wire, watch, guard). ``wire`` records everything under indisync/#; ``watch`` is our own
    INDI client on the Weather Simulator."""
    from ..devices.session import open_devices

    indi = rig.nodes["master"].indi
    prepare_mount(indi, lon, dec, weather=True)
    prepare_dome(indi)
    wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
    stack.callback(wire.close)
    watch = stack.enter_context(open_devices(IndiConfig(host=indi.host, port=indi.port, weather=WEATHER),
                                             need=("weather",), want=()))
    guard = stack.enter_context(guard_process(rig))
    rig.start_node("master")
    imaging_with_the_dome_open(rig, wire, guard)
    wait_until(lambda: [s for s in guard_states(wire) if s["master_online"] is True], 15,
               "the guard seeing the master online", 0.2, detail=lambda: logs(rig, guard))
    return indi, wire, watch, guard
