"""A private mosquitto broker for tests, benchmarks and the demo.

``Mosquitto`` writes its own config (and optional password file and ACL) into a temporary
directory, starts ``mosquitto -c`` on a free loopback port, waits until the port accepts, and
always cleans up. ``restart()`` keeps the port, so clients reconnect to the same address.

    with Mosquitto() as broker:
        ... connect to 127.0.0.1:broker.port ...
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import IndisyncError
from .indi import free_port

HOST = "127.0.0.1"


class BrokerError(IndisyncError):
    """The private mosquitto could not be started or stopped."""


class Mosquitto:
    """A mosquitto process on 127.0.0.1 with a config written from the arguments.

    ``config_extra``: lines appended to the generated config.
    ``acl``: the text of an ACL file (mosquitto ``acl_file`` syntax).
    ``passwords``: {user: password}; given, anonymous clients are refused.
    """

    def __init__(
        self,
        port: int | None = None,
        config_extra: str = "",
        acl: str | None = None,
        passwords: dict[str, str] | None = None,
        start_timeout: float = 10.0,
    ):
        self.host = HOST
        self.port = port or free_port()
        self._config_extra = config_extra
        self._acl = acl
        self._passwords = passwords
        self._start_timeout = start_timeout
        self._dir: Path | None = None
        self._proc: subprocess.Popen | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Mosquitto":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if shutil.which("mosquitto") is None:
            raise BrokerError("mosquitto is not installed; install it with `apt-get install mosquitto`")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="indisync-mosquitto-"))
            self._write_files()
        if self.running:
            return
        self._proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(self._dir / "stderr.txt", "ab"),
            start_new_session=True,  # a Ctrl-C in the test terminal goes to pytest, which cleans up
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self._proc.returncode}: {self.log_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {self._start_timeout} s")

    def stop(self) -> None:
        """Stop the broker process (SIGTERM, then SIGKILL); files stay for ``log_text()``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the broker: no clean goodbye to clients, like a crashed or unplugged host."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, optionally stay down ``down_for`` seconds, start again on the same port."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- inspection ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        assert self._dir is not None, "start() the broker first"
        return self._dir / "mosquitto.conf"

    def log_text(self) -> str:
        if self._dir is None:
            return ""
        parts = []
        for name in ("mosquitto.log", "stderr.txt"):
            path = self._dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    # -- files -----------------------------------------------------------------------------
    def _write_files(self) -> None:
        assert self._dir is not None
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "set_tcp_nodelay true",  # as in configs/mosquitto.conf: no Nagle delay on small messages
            f"log_dest file {self._dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto would drop to user 'mosquitto', which cannot read our temp dir
        if self._passwords is not None:
            pw_path = self._dir / "passwords"
            pw_path.write_text("")
            for user, password in self._passwords.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw_path), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pw_path}"]
        else:
            lines.append("allow_anonymous true")
        if self._acl is not None:
            acl_path = self._dir / "acl"
            acl_path.write_text(self._acl)
            lines.append(f"acl_file {acl_path}")
        if self._config_extra:
            lines.append(self._config_extra)
        self.config_path.write_text("\n".join(lines) + "\n")
