"""The one PyIndi client of a node: a BaseClient whose callbacks only copy data and hand it over.

pyindi-client calls our callbacks on its own network thread, and an exception escaping one of them
can take the whole process down, so every callback is guarded. Callbacks do not touch devices:
they snapshot property values into plain Python objects, queue BLOB bytes, and wake waiters.
Everything else (waiting, sending, decoding FITS) happens on the caller's thread.

A client object must never be freed while its socket thread runs. libindi's ``disconnectServer``
waits only 2 s for that thread, which may still be delivering a burst of callbacks (the flood of
definitions right after connecting, on a loaded machine). If we then dropped the client, the running
callback would hold the last reference, and the C++ client would be deleted on its own thread (an
abort), or the thread would call into a freed Python object (heap corruption, a segfault minutes
later). So every client is held here from connect until its socket thread has ended.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import queue
import socket
import stat
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import PyIndi

from ..errors import ConnectionFailed, DeviceError, PropertyTimeout

log = logging.getLogger(__name__)

STATE_NAMES = {PyIndi.IPS_IDLE: "Idle", PyIndi.IPS_OK: "Ok", PyIndi.IPS_BUSY: "Busy", PyIndi.IPS_ALERT: "Alert"}


@dataclass
class PropertySnapshot:
    """A property's values as last seen, copied out of PyIndi so any thread may read them."""

    device: str
    name: str
    kind: str  # number | switch | text | light | blob
    state: str  # Idle | Ok | Busy | Alert
    values: dict[str, Any]
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # number min/max
    generation: int = 0  # bumps on every update; lets a setter tell a fresh answer from an old one
    rule: str | None = None  # switch rule: OneOfMany | AtMostOne | AnyOfMany


@dataclass
class Blob:
    device: str
    property: str
    element: str
    data: bytes
    format: str
    received: float  # time.time() on arrival


# libindi calls these two on the thread that called connectServer/disconnectServer as well; every
# other callback comes from the connection's socket thread.
_CALLED_ON_CALLERS_THREAD = {"serverConnected", "serverDisconnected"}


def guarded(method: Callable) -> Callable:
    """Never let an exception leave a pyindi-client callback.

    The failure is logged as text only. A log record holding the exception would hold its traceback,
    and with it the callback's PyIndi arguments, which wrap C++ objects owned by the client: freed
    after the client is gone (when a log handler drops the record), they touch freed memory.
    """

    @functools.wraps(method)
    def wrapper(self, *args):
        try:
            if method.__name__ not in _CALLED_ON_CALLERS_THREAD:
                self._socket_threads.add(threading.get_native_id())
            method(self, *args)
        except BaseException as exc:  # noqa: BLE001 - anything escaping would kill the process
            text = "".join(traceback.format_exception(exc))
            traceback.clear_frames(exc.__traceback__)
            del exc
            log.error("INDI callback %s failed (ignored):\n%s", method.__name__, text)

    return wrapper


def _snapshot(prop, generation: int) -> PropertySnapshot | None:
    kind = prop.getType()
    device, name = prop.getDeviceName(), prop.getName()
    state = STATE_NAMES.get(prop.getState(), "Idle")
    if kind == PyIndi.INDI_NUMBER:
        vec = PyIndi.PropertyNumber(prop)
        values = {e.getName(): e.getValue() for e in vec}
        limits = {e.getName(): (e.getMin(), e.getMax()) for e in vec}
        return PropertySnapshot(device, name, "number", state, values, limits, generation)
    if kind == PyIndi.INDI_SWITCH:
        vec = PyIndi.PropertySwitch(prop)
        values = {e.getName(): e.getState() == PyIndi.ISS_ON for e in vec}
        rules = {PyIndi.ISR_1OFMANY: "OneOfMany", PyIndi.ISR_ATMOST1: "AtMostOne", PyIndi.ISR_NOFMANY: "AnyOfMany"}
        return PropertySnapshot(device, name, "switch", state, values, {}, generation, rules.get(vec.getRule()))
    if kind == PyIndi.INDI_TEXT:
        vec = PyIndi.PropertyText(prop)
        return PropertySnapshot(device, name, "text", state, {e.getName(): e.getText() for e in vec}, {}, generation)
    if kind == PyIndi.INDI_LIGHT:
        vec = PyIndi.PropertyLight(prop)
        values = {e.getName(): STATE_NAMES.get(e.getState(), "Idle") for e in vec}
        return PropertySnapshot(device, name, "light", state, values, {}, generation)
    if kind == PyIndi.INDI_BLOB:
        return PropertySnapshot(device, name, "blob", state, {}, {}, generation)
    return None


_TASKS = "/proc/self/task"  # one entry per live thread of this process (Linux)
_HELD_LOCK = threading.Lock()
_HELD: list["IndiClient"] = []  # every client from connect until its socket thread has ended


def _thread_ids() -> set[int]:
    try:
        return {int(name) for name in os.listdir(_TASKS)}
    except OSError:
        return set()


def release_finished_clients() -> int:
    """Let go of closed clients whose socket threads have ended; return how many are still held.

    Called from ordinary Python threads (connect, close, exit), never from an INDI callback, so a
    client freed here is freed on a thread that is not its own.
    """
    with _HELD_LOCK:
        keep, finished = [], []
        for client in _HELD:
            (finished if client._closing and not client._socket_thread_running() else keep).append(client)
        _HELD[:] = keep
    # Returning drops ``finished``: the last references to those clients may go here, on this thread.
    return len(keep)


@atexit.register
def _close_all_at_exit() -> None:
    # Interpreter shutdown frees what is left; make sure no socket thread is still calling in.
    with _HELD_LOCK:
        open_clients = [c for c in _HELD if not c._closing]
    for client in open_clients:
        client.close()


class IndiClient(PyIndi.BaseClient):
    """Connection to one indiserver. Use ``IndiClient.connect(host, port, timeout)``."""

    def __init__(self, host: str, port: int):
        super().__init__()
        self.host, self.port = host, port
        self._cond = threading.Condition()
        self._props: dict[tuple[str, str], PropertySnapshot] = {}
        self._updated: dict[tuple[str, str], float] = {}  # time.monotonic() of each property's last update
        self._devices: set[str] = set()
        self._generation = 0
        self._connected = False
        self._lost = False
        self._closing = False  # close() was called: a disconnect now is no loss worth a warning
        self._close_lock = threading.Lock()
        self._socket_threads: set[int] = set()  # native ids of the thread(s) seen delivering callbacks
        # Threads that appeared while connectServer ran: the connection's thread among them. Used only
        # if no callback ever came (a failed connect), because another library may start a thread then.
        self._new_threads: set[int] = set()
        self._blob_queues: dict[str, queue.Queue[Blob]] = {}
        # pyindi-client writes one request to the socket in many small pieces and has no lock of its
        # own: two threads sending at once (guide pulses while the main thread exposes) would
        # interleave their XML. Every send on this connection goes through this lock.
        self._send_lock = threading.Lock()
        self.messages: list[tuple[str, str]] = []  # (device, text), the latest few hundred

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = 10.0) -> "IndiClient":
        release_finished_clients()
        client = cls(host, port)
        client.setServer(host, int(port))
        whole = max(1, int(timeout))
        client.setConnectionTimeout(whole, 0)
        with _HELD_LOCK:
            _HELD.append(client)
        before = _thread_ids()
        connected = client.connectServer()
        client._new_threads = _thread_ids() - before - {t.native_id for t in threading.enumerate()}
        if not connected:
            client.close()  # its connecting thread may still be running: keep it held until it ends
            raise ConnectionFailed(
                f"no INDI server answered at {host}:{port} within {timeout:g}s. Is indiserver running there? "
                "Check --indi HOST:PORT or indi.host/indi.port in the config."
            )
        with client._cond:
            client._connected = True
        _disable_nagle(host, int(port))
        return client

    def close(self, wait: float = 10.0) -> None:
        """Disconnect, and wait (up to ``wait`` s) for the socket thread to end before letting go.

        Safe to call twice and from any Python thread except an INDI callback.
        """
        with self._close_lock:
            if self._closing:
                return
            self._closing = True
            try:
                if self.isServerConnected():
                    self.disconnectServer()
            except Exception:  # noqa: BLE001 - closing must not raise
                log.debug("disconnectServer failed", exc_info=True)
        if not self._socket_threads:
            wait = min(wait, 3.0)  # no callback ever came: only a connecting thread can be left
        deadline = time.monotonic() + wait
        while self._socket_thread_running() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._socket_thread_running() and self._socket_threads:
            log.warning("the INDI socket thread for %s is still busy %gs after disconnecting; "
                        "its client is kept until it ends", self.address, wait)
        release_finished_clients()

    def _socket_thread_running(self) -> bool:
        if not os.path.isdir(_TASKS):
            return True  # cannot tell: hold the client for the life of the process
        return bool((self._socket_threads or self._new_threads) & _thread_ids())

    # ---- callbacks: copy, queue, notify; nothing else ----------------------------------------
    @guarded
    def newDevice(self, device):
        with self._cond:
            self._devices.add(device.getDeviceName())
            self._cond.notify_all()

    @guarded
    def removeDevice(self, device):
        name = device.getDeviceName()
        with self._cond:
            self._devices.discard(name)
            for key in [k for k in self._props if k[0] == name]:
                del self._props[key]
                self._updated.pop(key, None)
            self._cond.notify_all()

    @guarded
    def newProperty(self, prop):
        self._store(prop)

    @guarded
    def updateProperty(self, prop):
        if prop.getType() == PyIndi.INDI_BLOB:
            self._receive_blob(prop)
        self._store(prop)

    @guarded
    def removeProperty(self, prop):
        with self._cond:
            self._props.pop((prop.getDeviceName(), prop.getName()), None)
            self._updated.pop((prop.getDeviceName(), prop.getName()), None)
            self._generation += 1
            self._cond.notify_all()

    @guarded
    def newMessage(self, device, message_id):
        text = device.messageQueue(message_id)
        name = device.getDeviceName()
        with self._cond:
            self.messages.append((name, text))
            del self.messages[:-300]
        log.debug("%s: %s", name, text)

    @guarded
    def serverConnected(self):
        with self._cond:
            self._connected, self._lost = True, False
            self._cond.notify_all()

    @guarded
    def serverDisconnected(self, code):
        with self._cond:
            self._connected, self._lost = False, True
            self._cond.notify_all()
        if not self._closing:
            log.warning("lost the connection to indiserver at %s (code %s)", self.address, code)

    def _store(self, prop) -> None:
        with self._cond:
            self._generation += 1
            snap = _snapshot(prop, self._generation)
            if snap is not None:
                self._props[(snap.device, snap.name)] = snap
                self._updated[(snap.device, snap.name)] = time.monotonic()
                self._devices.add(snap.device)
            self._cond.notify_all()

    def _receive_blob(self, prop) -> None:
        vec = PyIndi.PropertyBlob(prop)
        device = prop.getDeviceName()
        for elem in vec:
            size = elem.getSize()
            if size <= 0:
                continue
            blob = Blob(device, prop.getName(), elem.getName(), bytes(elem.getblobdata()), elem.getFormat(), time.time())
            self.blob_queue(device).put(blob)

    # ---- what the rest of the layer uses ------------------------------------------------------
    def blob_queue(self, device: str) -> "queue.Queue[Blob]":
        with self._cond:
            return self._blob_queues.setdefault(device, queue.Queue())

    def enable_blobs(self, device: str) -> None:
        """Ask for this device's BLOBs on our connection. Needed again after every (re)connect."""
        with self._send_lock:
            self.setBLOBMode(PyIndi.B_ALSO, device, None)

    def send(self, request) -> None:
        """Send one new-property request (a PyIndi PropertyNumber/Switch/Text) whole."""
        with self._send_lock:
            self.check_alive()
            self.sendNewProperty(request)

    @property
    def lost(self) -> bool:
        return self._lost

    def check_alive(self) -> None:
        if self._lost or not self._connected:
            raise DeviceError(
                f"lost the connection to indiserver at {self.address}; is it still running? "
                "The node will report this and reconnect."
            )

    def snapshot(self, device: str, name: str) -> PropertySnapshot | None:
        with self._cond:
            return self._props.get((device, name))

    def last_update(self, device: str, prefix: str = "") -> float | None:
        """time.monotonic() of the latest update of any of ``device``'s properties named ``prefix*``."""
        with self._cond:
            times = [t for (d, n), t in self._updated.items() if d == device and n.startswith(prefix)]
        return max(times) if times else None

    def devices(self) -> list[str]:
        with self._cond:
            return sorted(self._devices)

    def properties(self, device: str) -> list[str]:
        with self._cond:
            return sorted(n for d, n in self._props if d == device)

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``predicate()`` is truthy (checked under the lock at each change) or fail."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                self.check_alive()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PropertyTimeout(f"timed out after {timeout:g}s waiting for {what} on {self.address}")
                self._cond.wait(min(remaining, 0.5))

    def wait_device(self, device: str, timeout: float) -> None:
        try:
            self.wait_until(lambda: device in self._devices, timeout, f"device {device!r}")
        except PropertyTimeout:
            raise PropertyTimeout(
                f"device {device!r} did not appear on {self.address} within {timeout:g}s; "
                f"devices there: {', '.join(self.devices()) or 'none'}. Check the device names under indi: "
                "in the config and the drivers indiserver runs."
            ) from None

    def wait_property(self, device: str, name: str, timeout: float) -> PropertySnapshot:
        self.wait_device(device, timeout)
        try:
            return self.wait_until(lambda: self._props.get((device, name)), timeout, f"property {device}.{name}")
        except PropertyTimeout:
            raise PropertyTimeout(
                f"property {device}.{name} did not appear within {timeout:g}s on {self.address}; "
                f"the device offers: {', '.join(self.properties(device)) or 'nothing'}"
            ) from None

    def generation(self) -> int:
        with self._cond:
            return self._generation


def _disable_nagle(host: str, port: int) -> None:
    """Set TCP_NODELAY on our connection to indiserver.

    pyindi-client does not expose its socket, and with Nagle on, a request sent right after another
    (a camera exposure right after a filter move) waits ~40 ms for the server's delayed ACK: that was
    most of the start skew between master and slaves. So find the socket among our file descriptors
    by its peer and set the option through a duplicate. Linux only; elsewhere it does nothing.
    """
    try:
        peers = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        try:
            # Only sockets: a duplicate of anything else (the client's wake-up pipe, say) would keep
            # it open behind the client's back.
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
                peer = sock.getpeername()
                if peer[1] == port and peer[0] in peers:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        finally:
            sock.close()  # closes our duplicate only; the client's descriptor stays open
