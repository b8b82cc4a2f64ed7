"""A private indiserver with the INDI simulator drivers, for tests, benchmarks and the demo.

Each server gets a free TCP port, its own local socket (``indiserver -u``: without it a second
server on the machine exits with "bind: Address already in use"), its own HOME (so drivers do not
share saved configs between runs) and our synthetic ``gsc`` catalogue first on PATH (without it the
CCD simulator draws no stars).

The module also speaks a little raw INDI XML (``set_number``, ``get_numbers``...). Tests and
benchmarks use that to set or read the simulator's truth (``SIM_FOCUSING``, ``SIM_TIME_FACTOR``);
the code under test never does.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

GSC_SOURCE = Path(__file__).with_name("bin") / "gsc"

# driver executable -> device name it creates
DRIVERS = {
    "indi_simulator_ccd": "CCD Simulator",
    "indi_simulator_focus": "Focuser Simulator",
    "indi_simulator_wheel": "Filter Simulator",
    "indi_simulator_telescope": "Telescope Simulator",
    "indi_simulator_guide": "Guide Simulator",
    "indi_simulator_weather": "Weather Simulator",
    "indi_simulator_dome": "Dome Simulator",
    "indi_simulator_rotator": "Rotator Simulator",
    "indi_simulator_lightpanel": "Light Panel Simulator",
}
# Our own drivers (indisync.sim.sky): executable name -> the devices it creates. IndiServer writes the
# executable into its bin/ (first on the drivers' PATH), bound to this Python and this indisync.
OWN_DRIVERS = {
    "indi_sky_sim": ("Sky Mount", "Sky Guider", "Sky Camera"),
}
OWN_DRIVER_MODULES = {"indi_sky_sim": "indisync.sim.sky"}
# What the ``indi_sim`` fixture runs: a camera node's simulators (weather and dome only where asked).
ALL_SIMULATORS = ("indi_simulator_ccd", "indi_simulator_focus", "indi_simulator_wheel", "indi_simulator_telescope",
                  "indi_simulator_guide")


# Under pytest-xdist (PYTEST_XDIST_WORKER "gw0", "gw1", ...) each worker hands out ports from a
# block of its own below Linux's ephemeral range (32768+): two workers never pick the same port, and
# no outgoing connection's source port can take one between free_port() and the server's bind.
_WORKER_PORT_BASE = 20000
_WORKER_PORT_BLOCK = 500
_next_port: dict[int, int] = {}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the caller binds it soon after)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit() and int(worker[2:]) < 20:
        first = _WORKER_PORT_BASE + int(worker[2:]) * _WORKER_PORT_BLOCK
        # Round-robin through the block, so a port handed out but not yet bound is not handed out again.
        start = _next_port.get(first, first + os.getpid() % _WORKER_PORT_BLOCK)
        for i in range(_WORKER_PORT_BLOCK):
            port = first + (start - first + i) % _WORKER_PORT_BLOCK
            with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _next_port[first] = first + (port - first + 1) % _WORKER_PORT_BLOCK
            return port
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatorStartError(RuntimeError):
    pass


def _devices_of(driver: str) -> tuple[str, ...]:
    return OWN_DRIVERS[driver] if driver in OWN_DRIVERS else (DRIVERS[driver],)


def _write_own_driver(path: Path, module: str) -> None:
    """The executable indiserver runs for one of our drivers: this interpreter, and the indisync
    this process imported (a worktree's, a checkout's) first on PYTHONPATH."""
    import indisync

    root = Path(indisync.__file__).resolve().parents[1]
    path.write_text("#!/bin/sh\n"
                    f"PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}} "
                    f"exec {shlex.quote(sys.executable)} -m {module} \"$@\"\n")
    path.chmod(0o755)


class IndiServer:
    """``with IndiServer() as srv:`` runs indiserver with the chosen simulators until the block ends."""

    def __init__(
        self,
        drivers=ALL_SIMULATORS,
        port: int | None = None,
        time_factor: float | None = None,
        workdir: str | Path | None = None,
        startup_timeout: float = 20.0,
    ):
        unknown = [d for d in drivers if d not in DRIVERS and d not in OWN_DRIVERS]
        if unknown:
            raise ValueError(f"unknown simulator driver(s) {unknown}; known: {', '.join([*DRIVERS, *OWN_DRIVERS])}")
        if shutil.which("indiserver") is None:
            raise SimulatorStartError("indiserver is not installed: run ./scripts/setup.sh (Debian package indi-bin)")
        if time_factor is not None and not 0.01 <= time_factor <= 100:
            # The simulator silently keeps its old factor for anything else: a 600 s exposure
            # would then really take 600 s.
            raise ValueError(f"time_factor {time_factor} is outside the simulators' range 0.01..100")
        self.drivers = tuple(drivers)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.time_factor = time_factor
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="indisync-indi-"))
        self.log_path = self.workdir / "indiserver.log"
        self.fifo_path = self.workdir / "indiserver.fifo"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def devices(self) -> list[str]:
        return [dev for d in self.drivers for dev in _devices_of(d)]

    def start(self) -> "IndiServer":
        bindir = self.workdir / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "home").mkdir(exist_ok=True)
        gsc = bindir / "gsc"
        shutil.copyfile(GSC_SOURCE, gsc)
        gsc.chmod(0o755)
        for driver in self.drivers:
            if driver in OWN_DRIVERS:
                _write_own_driver(bindir / driver, OWN_DRIVER_MODULES[driver])
        env = dict(os.environ)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["HOME"] = str(self.workdir / "home")
        sock = self.workdir / "indiserver.sock"
        # The control FIFO lets a test stop and start one driver (the weather station going away)
        # while the server and the other drivers run on.
        if self.fifo_path.exists():
            self.fifo_path.unlink()
        os.mkfifo(self.fifo_path)
        cmd = ["indiserver", "-v", "-p", str(self.port), "-u", str(sock), "-f", str(self.fifo_path), *self.drivers]
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=self.workdir, start_new_session=True,  # its own process group: we kill drivers too
            )
        finally:
            log.close()
        try:
            self._wait_ready()
            if self.time_factor is not None:
                for device in ("CCD Simulator", "Guide Simulator"):
                    if device in self.devices:
                        set_number(self.host, self.port, device, "SIMULATOR_SETTINGS",
                                   {"SIM_TIME_FACTOR": self.time_factor})
                        actual = get_numbers(self.host, self.port, device, "SIMULATOR_SETTINGS")["SIM_TIME_FACTOR"]
                        if abs(actual - self.time_factor) > 1e-6:
                            raise SimulatorStartError(
                                f"{device} kept SIM_TIME_FACTOR {actual} instead of {self.time_factor}")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        missing = set(self.devices)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SimulatorStartError(
                    f"indiserver exited with code {self.process.returncode}:\n{self.log_text()[-2000:]}"
                )
            try:
                seen = list_devices(self.host, self.port, timeout=1.0)
            except OSError:
                time.sleep(0.1)
                continue
            missing = set(self.devices) - set(seen)
            if not missing:
                return
            time.sleep(0.2)
        raise SimulatorStartError(
            f"indiserver on port {self.port} did not offer {sorted(missing)} within "
            f"{self.startup_timeout}s:\n{self.log_text()[-2000:]}"
        )

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        elif proc is not None:
            # indiserver is gone but its drivers may not be: sweep the group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """Kill the whole server and its drivers at once, as a crash or a power cut would."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)
            self.process = None

    def stop_driver(self, driver: str, timeout: float = 10.0) -> None:
        """Stop one driver through indiserver's FIFO (its device disappears for every client) and
        wait until the server no longer offers its device."""
        self._fifo(f"stop {driver}", driver)
        device = _devices_of(driver)[0]
        deadline = time.monotonic() + timeout
        while device in list_devices(self.host, self.port, timeout=1.0):
            if time.monotonic() > deadline:
                raise SimulatorStartError(f"{device} still offered {timeout:g}s after stopping {driver}")
            time.sleep(0.1)

    def start_driver(self, driver: str, timeout: float = 10.0) -> None:
        """Start one driver again (fresh: its device comes back disconnected, with default values)."""
        self._fifo(f"start {driver}", driver)
        device = _devices_of(driver)[0]
        deadline = time.monotonic() + timeout
        while device not in list_devices(self.host, self.port, timeout=1.0):
            if time.monotonic() > deadline:
                raise SimulatorStartError(f"{device} not offered {timeout:g}s after starting {driver}")
            time.sleep(0.1)

    def _fifo(self, line: str, driver: str) -> None:
        if driver not in DRIVERS and driver not in OWN_DRIVERS:
            raise ValueError(f"unknown simulator driver {driver!r}; known: {', '.join([*DRIVERS, *OWN_DRIVERS])}")
        if self.process is None or self.process.poll() is not None:
            raise SimulatorStartError("indiserver is not running")
        # O_NONBLOCK: fails (ENXIO) instead of blocking forever while nobody reads the FIFO; indiserver
        # reopens it after each writer, so try again for a moment.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                fd = os.open(self.fifo_path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SimulatorStartError(f"indiserver does not read its FIFO {self.fifo_path}") from None
                time.sleep(0.05)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "IndiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


# ---- raw INDI XML, for tests, benchmarks and the demo only ---------------------------------------

def _send(host: str, port: int, xml: str) -> None:
    with closing(socket.create_connection((host, port), timeout=5)) as s:
        s.sendall(xml.encode())
        # indiserver forwards asynchronously; give it a moment before the socket closes.
        time.sleep(0.2)


def set_number(host: str, port: int, device: str, prop: str, values: dict[str, float]) -> None:
    items = "".join(f"<oneNumber name={quoteattr(k)}>{float(v)!r}</oneNumber>" for k, v in values.items())
    _send(host, port, f"<newNumberVector device={quoteattr(device)} name={quoteattr(prop)}>{items}</newNumberVector>\n")


def set_ccd_settings(host: str, port: int, timeout: float = 5.0, device: str = "CCD Simulator",
                     **values: float) -> dict[str, float]:
    """Set SIMULATOR_SETTINGS elements and return what the simulator reports back once they hold, or
    after ``timeout`` s: it may refuse a value (SIM_NOISE above 6000 keeps the old one), so callers
    check the returned values rather than trusting what they sent."""
    set_number(host, port, device, "SIMULATOR_SETTINGS", values)
    deadline = time.monotonic() + timeout
    while True:
        actual = get_numbers(host, port, device, "SIMULATOR_SETTINGS")
        if all(abs(actual[k] - v) < 1e-6 for k, v in values.items()) or time.monotonic() > deadline:
            return actual
        time.sleep(0.1)


def set_switch(host: str, port: int, device: str, prop: str, values: dict[str, bool]) -> None:
    items = "".join(
        f"<oneSwitch name={quoteattr(k)}>{'On' if v else 'Off'}</oneSwitch>" for k, v in values.items()
    )
    _send(host, port, f"<newSwitchVector device={quoteattr(device)} name={quoteattr(prop)}>{items}</newSwitchVector>\n")


def set_text(host: str, port: int, device: str, prop: str, values: dict[str, str]) -> None:
    items = "".join(f"<oneText name={quoteattr(k)}>{escape(v)}</oneText>" for k, v in values.items())
    _send(host, port, f"<newTextVector device={quoteattr(device)} name={quoteattr(prop)}>{items}</newTextVector>\n")


def _read_definitions(host: str, port: int, device: str | None, timeout: float, name: str | None = None) -> str:
    """Send getProperties and collect what arrives within ``timeout`` seconds (BLOBs are not asked for).

    With ``name``, ask for that one property and return as soon as its definition is complete: a
    device that updates some property every poll (a tracking mount) never leaves the quiet gap
    that otherwise ends the read, so every read would last the whole timeout."""
    attr = f" device={quoteattr(device)}" if device else ""
    if name is not None:
        attr += f" name={quoteattr(name)}"
    whole = re.compile(rf'<def(\w+)Vector[^>]*\bname={re.escape(quoteattr(name))}.*?</def\1Vector>', re.S) \
        if name is not None else None
    chunks = []
    with closing(socket.create_connection((host, port), timeout=timeout)) as s:
        s.sendall(f'<getProperties version="1.7"{attr}/>\n'.encode())
        deadline = time.monotonic() + timeout
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            if whole is not None and whole.search(b"".join(chunks).decode(errors="replace")):
                break
            try:
                data = s.recv(65536)
            except socket.timeout:
                if chunks:
                    # a quiet gap after data: the server has sent what it has.
                    try:
                        s.settimeout(0.3)
                        data = s.recv(65536)
                    except socket.timeout:
                        break
                else:
                    continue
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def list_devices(host: str, port: int, timeout: float = 2.0) -> list[str]:
    text = _read_definitions(host, port, None, timeout)
    return sorted(set(re.findall(r'<def\w+Vector[^>]*\bdevice="([^"]+)"', text)))


def _read_vector(host: str, port: int, device: str, prop: str, kind: str, timeout: float):
    """The ``def{kind}Vector`` element of ``device.prop`` from the server's definitions; KeyError if none."""
    text = _read_definitions(host, port, device, timeout, prop)
    if f"name={quoteattr(prop)}" not in text:  # some drivers answer no named request (light vectors)
        text = _read_definitions(host, port, device, timeout)
    for match in re.finditer(rf"<def{kind}Vector\b.*?</def{kind}Vector>", text, re.S):
        elem = ET.fromstring(match.group(0))
        if elem.get("device") == device and elem.get("name") == prop:
            return elem
    raise KeyError(f"{device}.{prop} not defined on {host}:{port}")


def get_numbers(host: str, port: int, device: str, prop: str, timeout: float = 2.0) -> dict[str, float]:
    """The current values of one number property, read from the server's definitions."""
    elem = _read_vector(host, port, device, prop, "Number", timeout)
    return {n.get("name"): float(n.text.strip()) for n in elem.findall("defNumber")}


def get_switches(host: str, port: int, device: str, prop: str, timeout: float = 2.0) -> dict[str, bool]:
    elem = _read_vector(host, port, device, prop, "Switch", timeout)
    return {n.get("name"): n.text.strip() == "On" for n in elem.findall("defSwitch")}


def get_lights(host: str, port: int, device: str, prop: str, timeout: float = 2.0) -> dict[str, str]:
    elem = _read_vector(host, port, device, prop, "Light", timeout)
    return {n.get("name"): n.text.strip() for n in elem.findall("defLight")}


def set_precipitation(host: str, port: int, mm_per_hour: float, device: str = "Weather Simulator") -> None:
    """Make it rain (or stop) in the Weather Simulator (WEATHER_CONTROL.Precip), read back. The
    status follows at the station's next update (WEATHER_UPDATE.PERIOD)."""
    set_number(host, port, device, "WEATHER_CONTROL", {"Precip": mm_per_hour})
    got = get_numbers(host, port, device, "WEATHER_CONTROL")["Precip"]
    if abs(got - mm_per_hour) > 1e-6:
        raise SimulatorStartError(f"{device} kept Precip {got} instead of {mm_per_hour}")


def crash_ccd_driver(host: str, port: int, device: str = "CCD Simulator") -> None:
    """Ask the CCD simulator to abort() itself (the driver's CCD_SIMULATE_CRASH switch)."""
    set_switch(host, port, device, "CCD_SIMULATE_CRASH", {"CRASH": True})


class PropertyWatch:
    """Every update the server sends of some properties of one device, with our arrival time: a
    raw connection of its own (no PyIndi) that records each ``def*Vector``/``set*Vector`` of the
    named properties as ``(time.monotonic(), name, state, {element: text}, message)``, so a test
    sees what a poll would miss (a park aborted and done again between two looks).

        with PropertyWatch(host, port, "Telescope Simulator", ("TELESCOPE_PARK",)) as watch:
            ...
            watch.updates("TELESCOPE_PARK", since=t0)
    """

    def __init__(self, host: str, port: int, device: str, names):
        import threading

        self.host, self.port, self.device, self.names = host, port, device, tuple(names)
        self._lock = threading.Lock()
        self._records: list[tuple[float, str, str, dict[str, str], str]] = []
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{device}", daemon=True)

    def start(self) -> "PropertyWatch":
        self._sock = socket.create_connection((self.host, self.port), timeout=5)
        for name in self.names:
            self._sock.sendall(f'<getProperties version="1.7" device={quoteattr(self.device)} '
                               f'name={quoteattr(name)}/>\n'.encode())
        self._thread.start()
        return self

    def _run(self) -> None:
        parser = ET.XMLPullParser(events=("start", "end"))
        parser.feed("<stream>")
        depth = 0
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                parser.feed(data.decode(errors="replace"))
                for event, elem in parser.read_events():
                    if event == "start":
                        depth += 1
                        continue
                    depth -= 1
                    if depth == 1 and re.fullmatch(r"(def|set)\w+Vector", elem.tag) \
                            and elem.get("device") == self.device and elem.get("name") in self.names:
                        values = {e.get("name"): (e.text or "").strip() for e in elem}
                        with self._lock:
                            self._records.append((time.monotonic(), elem.get("name"), elem.get("state", ""),
                                                  values, elem.get("message", "")))
                    if depth == 1:
                        elem.clear()
            except ET.ParseError:
                return

    def updates(self, name: str | None = None, since: float = 0.0) -> list[tuple[float, str, str, dict, str]]:
        with self._lock:
            return [r for r in self._records if r[0] >= since and (name is None or r[1] == name)]

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)  # it looks at the flag at least every 0.2 s
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> "PropertyWatch":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

