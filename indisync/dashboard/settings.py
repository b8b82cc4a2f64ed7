"""Settings of the live dashboard (config section ``dashboard``; `indisync dashboard`).

    dashboard:
      host: 127.0.0.1        # who may connect: 127.0.0.1 this computer only; 0.0.0.0 every interface
      port: 8080
      password_file: null    # a file holding the password (set one before opening it up): HTTP basic auth
                             # (any user name) or ?token=<password>; never the password itself, as mqtt.password_file
      max_streams: 8         # live viewers at once; the next one gets 503 with the reason
      socket_timeout: 30     # seconds a connection may stay silent (a request not sent, a viewer not reading)

Importable without paho or the HTTP server: config.py assembles it cheaply.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..configtypes import ConfigValueError
from ..errors import ConfigError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class DashboardSettings:
    host: str = "127.0.0.1"  # the address to listen on; "0.0.0.0" (or "::") opens it to the network
    port: int = 8080  # 0: any free port (tests)
    password_file: str | None = None  # a file holding the password; null: no authentication (keep host local then)
    max_streams: int = 8  # live event streams (open pages) at once
    socket_timeout: float = 30.0  # seconds of silence before a connection is closed

    def validate(self) -> None:
        if not self.host or _CONTROL.search(self.host) or " " in self.host:
            raise ConfigValueError("host", f"got {self.host!r}; allowed: an address such as 127.0.0.1, 0.0.0.0 "
                                           "or a host name")
        if not 0 <= self.port <= 65535:
            raise ConfigValueError("port", f"got {self.port}; allowed: 0..65535 (0: any free port)")
        if self.password_file is not None and not self.password_file.strip():
            raise ConfigValueError("password_file", "allowed: null, or the path of a file holding only the password")
        if not 1 <= self.max_streams <= 1000:
            raise ConfigValueError("max_streams", f"got {self.max_streams}; allowed: 1..1000")
        if not math.isfinite(self.socket_timeout) or not 1 <= self.socket_timeout <= 3600:
            raise ConfigValueError("socket_timeout", f"got {self.socket_timeout}; allowed: 1..3600 seconds")

    @property
    def local_only(self) -> bool:
        """True when only this computer can connect (a loopback address or "localhost")."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_password(settings: DashboardSettings) -> str | None:
    """The password in ``password_file`` (its first line), None without one; ConfigError naming the
    file and the fix when it cannot be read or holds no usable password."""
    if settings.password_file is None:
        return None
    path = Path(settings.password_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"dashboard.password_file {path}: {why}. Create it holding only the password "
                          "(chmod 600), or set password_file: null") from None
    password = text.splitlines()[0] if text.splitlines() else ""
    if not password or _CONTROL.search(password):
        raise ConfigError(f"dashboard.password_file {path}: its first line must be the password (not empty, "
                          "no control characters)")
    return password
