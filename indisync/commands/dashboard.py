"""`indisync dashboard`: a live web page of every node and of the rig, from the MQTT broker."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import uuid

from ..config import Config
from ..errors import ConfigError, IndisyncError, ProtocolError

HELP = ("serve a live web page of the rig (weather, mount, dome, guard) and every node (role, online, phase, "
        "exposure progress, HFR, V-curve, latest frame, night state)")

CONNECT_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port (default dashboard.port, 8080; 0 picks a free one)")
    parser.add_argument("--host", "--bind", dest="host", default=None, metavar="ADDR",
                        help="address to listen on (default dashboard.host, 127.0.0.1: this computer only; "
                             "0.0.0.0 opens it to the network: set dashboard.password_file first)")


def settings_for(args, cfg: Config):
    """The ``dashboard:`` section with --host / --port applied, checked."""
    from ..configtypes import ConfigValueError

    changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = dataclasses.replace(cfg.dashboard, **changes)
    try:
        settings.validate()
    except ConfigValueError as exc:
        raise ConfigError(f"dashboard.{exc} (from --host/--port or the config)") from None
    return settings


def run(args, cfg: Config) -> int:
    from ..protocol import topics
    from ..protocol.transport import MqttTransport
    from ..dashboard.model import LiveModel
    from ..dashboard.server import DashboardServer
    from .record import mqtt_for

    settings = settings_for(args, cfg)
    mqtt_cfg = mqtt_for(args, cfg)
    tree = topics.Topics(mqtt_cfg.topic_prefix, mqtt_cfg.discovery_prefix)
    model = LiveModel(tree, mqtt_cfg.dead_after, zone=getattr(cfg.site, "timezone", None) if cfg.site else None)
    transport = MqttTransport(mqtt_cfg, client_id=f"indisync-dashboard-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    model.attach(transport)
    try:
        server = DashboardServer(model, settings=settings)
    except OSError as exc:
        raise IndisyncError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; choose another "
                            "--port (or dashboard.port)") from None
    if not settings.local_only and server.password is None:
        log.warning("the dashboard listens on %s with no password: anyone on that network sees the rig. "
                    "Set dashboard.password_file (or keep dashboard.host at 127.0.0.1 and use ssh -L)", settings.host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    transport.start()
    server.start()
    try:
        if not transport.wait_connected(CONNECT_TIMEOUT_S):
            raise ProtocolError(f"no MQTT broker answered at {mqtt_cfg.host}:{mqtt_cfg.port} within "
                                f"{CONNECT_TIMEOUT_S:g} s; check --broker / mqtt.host and the credentials")
        shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
        access = ("password: HTTP basic auth (any user name), or add ?token=<the password> for a phone"
                  if server.password else "no password")
        reach = "this computer only" if settings.local_only else "open to the network"
        print(f"dashboard: http://{shown}:{server.port}/ ({reach}; {access}; broker {mqtt_cfg.host}:{mqtt_cfg.port})",
              flush=True)
        stop.wait()
    finally:
        server.stop()
        transport.stop()
    return 0
