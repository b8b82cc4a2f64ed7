"""A whole simulated rig on one machine: a private broker, one indiserver per node (each with the
INDI simulators and its own port and socket), a config file per node, and the node processes.

Used by `indisync demo`, the end-to-end tests and the sync benchmark. The simulator's true focus
(``SIM_FOCUSING``) is set here, near each node's focuser, so that autofocus has something to find;
the nodes themselves only ever see images. Likewise, with ``rotators=True`` each node's CCD Simulator
follows its Rotator Simulator (``SIM_ROTATION``, indisync.sim.rotator_coupling.RotatorCoupling), and
with ``twilight``, ``sky`` or ``light_panels`` each node's CCD Simulator has the simulated twilight sky
and light panel (``SIM_SKYGLOW``, indisync.sim.calib_coupling.SkyCoupling) for calibration frames.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from .broker import Mosquitto
from .calib_coupling import PANEL_DEVICE, SkyCoupling, Twilight, has_panel
from .calib_gate import ExposureGate
from .indi import IndiServer, set_number
from .rotator_coupling import RotatorCoupling
from .mounts import set_tracking_error
from .netproxy import DelayProxy, NetProfile

# A node's simulators: the master also has the mount (and the guide camera for the guider).
SLAVE_DRIVERS = ("indi_simulator_ccd", "indi_simulator_focus", "indi_simulator_wheel", "indi_simulator_telescope")
MASTER_DRIVERS = SLAVE_DRIVERS + ("indi_simulator_guide",)

# The CCD simulator's defocus scale: FWHM = 0.5625*(20*d/SIM_FOCUS_MAX)^2 + seeing. 10000 gives a
# V-curve whose critical zone is a few hundred steps wide, like a real small refractor.
SIM_FOCUS_MAX = 10000
FOCUSER_START = 50000


def night_boundary_far_from_now(now: datetime | None = None) -> int:
    """A ``record.night_starts_hour`` 12 hours from the local hour now: a night log started now is not
    cut in two by the night's boundary within the next 11 hours, whatever the time of day."""
    return ((now or datetime.now().astimezone()).hour + 12) % 24


@dataclass
class SimNode:
    name: str
    role: str
    indi: IndiServer
    config_path: Path
    true_focus: int
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    starts: int = 0

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""


@dataclass
class SimRig:
    slaves: int = 1
    time_factor: float = 0.01
    workdir: Path | None = None
    master_section: dict = field(default_factory=dict)
    slave_section: dict = field(default_factory=dict)
    focus_section: dict = field(default_factory=dict)
    mqtt_section: dict = field(default_factory=dict)
    # The night log is always written; the end-of-sequence report (seconds of matplotlib) only when
    # asked for, so the many short rigs of the test suite are not held up by it.
    record_section: dict = field(default_factory=lambda: {"report": False})
    guider_section: dict | None = None  # given: the master guides (its mount is pointed off the pole)
    # The night (indisync.night): extra simulators for the master (e.g. indi_simulator_weather), top-level
    # sections for every node's config (e.g. camera) and for the master's only (site, night, safety;
    # an "indi" mapping there is merged into the master's indi section).
    master_drivers: tuple[str, ...] = ()
    node_sections: dict = field(default_factory=dict)
    master_sections: dict = field(default_factory=dict)
    acquire_section: dict = field(default_factory=dict)  # every node's acquire: (plate solving) section
    drift_arcsec_per_s: tuple[float, float] = (0.25, 0.15)  # mount tracking error (RA, Dec) when guiding
    focus_offset: tuple[int, int] = (150, 600)  # true focus this many steps (random) from the start
    seed: int = 1
    nodes: dict[str, SimNode] = field(default_factory=dict)
    broker: Mosquitto | None = None
    # given: each node reaches the broker through its own DelayProxy (self.proxies[name]), a Wi-Fi link
    network: NetProfile | None = None
    proxies: dict[str, DelayProxy] = field(default_factory=dict)
    # True: every node has a Rotator Simulator (indi.rotator) whose angle its CCD Simulator follows
    # (SIM_ROTATION, through a RotatorCoupling each: self.couplings[name]); rotator_sign -1 stands for a
    # rotator mounted the other way round (the field's PA then falls as the rotator's angle grows)
    rotators: bool = False
    rotator_sign: int = 1
    couplings: dict[str, RotatorCoupling] = field(default_factory=dict)
    # Calibration (issue 17): light_panels are the nodes with a Light Panel Simulator (indi.light_panel;
    # True: every node). With twilight (a sky darkening or brightening from its start), sky=True or any
    # panel, every node's CCD Simulator follows the simulated sky and panel (SIM_SKYGLOW, through a
    # SkyCoupling each: self.skies[name]; set_twilight() starts another twilight); filter_offsets: the
    # sky's dimming per filter name (default indisync.sim.calib_coupling.DEFAULT_FILTER_OFFSETS). Such a
    # node reaches its indiserver through an ExposureGate (self.gates[name], indisync.sim.calib_gate),
    # which has the sky right at every exposure's start
    light_panels: bool | tuple[str, ...] = ()
    twilight: Twilight | None = None
    sky: bool = False
    filter_offsets: dict | None = None
    skies: dict[str, SkyCoupling] = field(default_factory=dict)
    gates: dict[str, ExposureGate] = field(default_factory=dict)  # the node's INDI connection goes through it

    def __post_init__(self):
        self._own_workdir = self.workdir is None
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="indisync-rig-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._rng = random.Random(self.seed)

    @property
    def images(self) -> Path:
        return self.workdir / "images"

    def start(self) -> "SimRig":
        try:
            # Nagle on the broker's sockets delays small command packets by tens of ms.
            self.broker = Mosquitto(config_extra="set_tcp_nodelay true\n")
            self.broker.start()
            self._add_node("master", "master", MASTER_DRIVERS + tuple(self.master_drivers))
            for i in range(1, self.slaves + 1):
                self._add_node(f"slave{i}", "slave", SLAVE_DRIVERS)
        except BaseException:
            self.stop()
            raise
        return self

    def _add_node(self, name: str, role: str, drivers) -> None:
        if self.rotators:
            drivers = (*drivers, "indi_simulator_rotator")
        panel = has_panel(self.light_panels, name)
        if panel:
            drivers = (*drivers, "indi_simulator_lightpanel")
        indi = IndiServer(drivers=drivers, time_factor=self.time_factor, workdir=self.workdir / f"indi-{name}")
        indi.start()
        if self.rotators:
            # as SIM_FOCUSING for autofocus: the simulator's truth, set beside the node, never by it
            self.couplings[name] = RotatorCoupling(indi.host, indi.port, sign=self.rotator_sign).start()
        if self.twilight is not None or self.sky or self.light_panels:
            self.skies[name] = SkyCoupling(indi.host, indi.port, self.twilight, filter_offsets=self.filter_offsets,
                                           panel=PANEL_DEVICE if panel else None).start()
            self.gates[name] = ExposureGate(self.skies[name], indi.host, indi.port).start()
        offset = self._rng.randint(*self.focus_offset) * self._rng.choice((-1, 1))
        true_focus = FOCUSER_START + offset
        self._set_true_focus(indi, true_focus)
        mqtt_host, mqtt_port = self.broker.host, self.broker.port
        if self.network is not None:
            seed = None if self.network.seed is None else self.network.seed + len(self.proxies)
            proxy = DelayProxy(mqtt_host, mqtt_port, dataclasses.replace(self.network, seed=seed)).start()
            self.proxies[name] = proxy
            mqtt_host, mqtt_port = proxy.host, proxy.port
        config = {
            "node": {"name": name, "role": role},
            "indi": {"host": indi.host, "port": self.gates[name].port if name in self.gates else indi.port,
                     "connect_timeout": 10},
            "mqtt": {"host": mqtt_host, "port": mqtt_port, "keepalive": 5, "heartbeat": 1.0,
                     "dead_after": 5.0, **self.mqtt_section},
            "storage": {"directory": str(self.images / name)},
            "focus": {"output_dir": str(self.workdir / "focus" / name), **self.focus_section},
            # a night log begun now stays one file: the night's boundary (local hour) 12 h away, not at
            # noon, where a run that crossed it would split its log and its report (issue 18)
            "record": {"night_starts_hour": night_boundary_far_from_now(), **self.record_section},
        }
        if self.rotators:
            config["indi"]["rotator"] = "Rotator Simulator"
        if panel:
            config["indi"]["light_panel"] = PANEL_DEVICE
        config.update(self.node_sections)
        if self.acquire_section:
            config["acquire"] = self.acquire_section
        if role == "master":
            extra = dict(self.master_sections)
            config["indi"].update(extra.pop("indi", {}))
            config.update(extra)
            config["master"] = self.master_section
            if self.guider_section is not None:
                config["guider"] = self.guider_section
                self._point_mount(indi)
        else:
            config["slave"] = self.slave_section
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.nodes[name] = SimNode(name, role, indi, path, true_focus)

    @staticmethod
    def _set_true_focus(indi: IndiServer, true_focus: int) -> None:
        set_number(indi.host, indi.port, "CCD Simulator", "SIM_FOCUSING",
                   {"SIM_FOCUS_POSITION": true_focus, "SIM_FOCUS_MAX": SIM_FOCUS_MAX, "SIM_SEEING": 3.0})

    def kill_indi(self, name: str) -> None:
        """kill -9 a node's indiserver and its drivers, as a crash or a pulled USB cable would."""
        self.nodes[name].indi.kill()

    def start_indi(self, name: str) -> None:
        """Bring a node's indiserver back on the same port (as systemd would) and put the simulators
        back as the real hardware would still be: the true focus where it was, and the master's
        mount pointed and tracking with its tracking error (a real mount keeps its position)."""
        node = self.nodes[name]
        node.indi.start()
        self._set_true_focus(node.indi, node.true_focus)
        if node.role == "master" and self.guider_section is not None:
            self._resume_mount(node.indi)

    def _resume_mount(self, indi: IndiServer, ra_hours: float = 6.0, dec_deg: float = 30.0) -> None:
        """A restarted Telescope Simulator forgets where it pointed; a real mount does not. Sync it
        back there at once (a goto would slew for seconds while the node already guides), read the
        position back, and track again with the tracking error."""
        from ..config import IndiConfig
        from ..devices.props import set_number as set_indi_number
        from ..devices.props import set_switch as set_indi_switch
        from ..devices.session import open_devices

        with open_devices(IndiConfig(host=indi.host, port=indi.port), need=("mount",), want=("mount",)) as dev:
            mount = dev.mount
            mount.unpark()
            for _attempt in range(5):  # a driver just started can drop the first sync: read it back
                set_indi_switch(dev.client, mount.name, "ON_COORD_SET", ["SYNC"], 10.0)
                set_indi_number(dev.client, mount.name, "EQUATORIAL_EOD_COORD", {"RA": ra_hours, "DEC": dec_deg}, 10.0)
                time.sleep(0.2)
                ra, dec = mount.coordinates
                if abs(ra - ra_hours) < 0.01 and abs(dec - dec_deg) < 0.1:
                    break
                time.sleep(0.5)
            set_indi_switch(dev.client, mount.name, "ON_COORD_SET", ["TRACK"], 10.0)
            ra, dec = mount.coordinates
            if abs(ra - ra_hours) > 0.01 or abs(dec - dec_deg) > 0.1:
                mount.goto(ra_hours, dec_deg)  # the sync would not take: slew there instead
                ra, dec = mount.coordinates
                if abs(ra - ra_hours) > 0.01 or abs(dec - dec_deg) > 0.1:
                    raise RuntimeError(f"the restarted mount reads RA {ra} DEC {dec}, not {ra_hours}, {dec_deg}")
            if dev.client.snapshot(mount.name, "TELESCOPE_TRACK_STATE") is not None:
                # Tracking shows as Busy, never Ok: send, then read the switch back.
                set_indi_switch(dev.client, mount.name, "TELESCOPE_TRACK_STATE", ["TRACK_ON"], 10.0, wait=False)
                tracking = dev.client.wait_until(
                    lambda: (dev.client.snapshot(mount.name, "TELESCOPE_TRACK_STATE").values.get("TRACK_ON") or None),
                    10.0, "tracking on")
                if not tracking:
                    raise RuntimeError("the restarted mount does not track")
        set_tracking_error(indi.host, indi.port, *self.drift_arcsec_per_s)
        set_number(indi.host, indi.port, "Guide Simulator", "POLLING_PERIOD", {"PERIOD_MS": 100})

    def restart_indi(self, name: str, down_for: float = 3.0) -> None:
        self.kill_indi(name)
        time.sleep(down_for)
        self.start_indi(name)

    def _point_mount(self, indi: IndiServer) -> None:
        """Slew the simulated mount away from the pole (where RA pulses move nothing), give it a
        tracking error to correct, and let the guide camera report finished frames every 0.1 s."""
        from ..config import IndiConfig
        from ..devices.session import open_devices

        with open_devices(IndiConfig(host=indi.host, port=indi.port), need=("mount",), want=("mount",)) as dev:
            dev.mount.unpark()  # a goto never unparks on its own
            dev.mount.goto(6.0, 30.0)
        set_tracking_error(indi.host, indi.port, *self.drift_arcsec_per_s)
        set_number(indi.host, indi.port, "Guide Simulator", "POLLING_PERIOD", {"PERIOD_MS": 100})

    def set_twilight(self, twilight: Twilight | None) -> None:
        """Start another twilight (None: the night's sky) on every node's simulated sky."""
        if not self.skies:
            raise RuntimeError("this rig has no simulated sky: start it with twilight=, sky=True or light_panels=")
        self.twilight = twilight
        for sky in self.skies.values():
            sky.set_twilight(twilight)

    # ---- node processes ------------------------------------------------------------------------
    def start_node(self, name: str, extra_args: tuple[str, ...] = ()) -> subprocess.Popen:
        node = self.nodes[name]
        node.starts += 1
        node.log_path = self.workdir / f"{name}.{node.starts}.log"
        log = open(node.log_path, "wb")
        try:
            node.process = subprocess.Popen(
                [sys.executable, "-m", "indisync.cli", "run", "--role", node.role, "--config", str(node.config_path),
                 *extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        return node.process

    def start_slaves(self, timeout: float = 30.0) -> list[str]:
        """Start every slave node and wait until each is up (so the master's first frame finds them)."""
        slaves = [name for name, node in self.nodes.items() if node.role == "slave"]
        for name in slaves:
            self.start_node(name)
        for name in slaves:
            self.wait_up(name, timeout)
        return slaves

    def wait_up(self, name: str, timeout: float = 30.0) -> None:
        """Wait until the node says it is up (devices connected, broker reached) in its log."""
        node = self.nodes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"{node.role} {name} up:" in node.log_text():
                return
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"node {name} exited with {node.process.returncode}:\n{node.log_text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"node {name} not up within {timeout:g}s:\n{node.log_text()[-3000:]}")

    def kill_node(self, name: str) -> None:
        proc = self.nodes[name].process
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_node(self, name: str, timeout: float = 20.0) -> int | None:
        proc = self.nodes[name].process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def wait_node(self, name: str, timeout: float) -> int | None:
        proc = self.nodes[name].process
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        for name in list(self.nodes):
            try:
                self.stop_node(name, timeout=10)
            except Exception:  # noqa: BLE001 - stop everything we can
                pass
        for coupling in (*self.couplings.values(), *self.gates.values(), *self.skies.values()):
            coupling.close()
        for node in self.nodes.values():
            node.indi.cleanup()
        for proxy in self.proxies.values():
            proxy.close()
        if self.broker is not None:
            self.broker.close()

    def __enter__(self) -> "SimRig":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def logs(self) -> str:
        parts = []
        for node in self.nodes.values():
            parts.append(f"===== {node.name} (node) =====\n{node.log_text()[-6000:]}")
        return "\n".join(parts)
