"""`indisync dashboard`: a live web page of every node, from the MQTT broker."""

from __future__ import annotations

import os
import signal
import threading
import uuid

from ..config import Config
from ..errors import IndisyncError, ProtocolError

HELP = "serve a live web page of every node (role, online, phase, exposure progress, HFR, V-curve, night state)"

CONNECT_TIMEOUT_S = 10.0


def add_arguments(parser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0 picks a free one)")
    parser.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                        help="address to listen on (default 0.0.0.0: reachable from other computers)")


def run(args, cfg: Config) -> int:
    from ..protocol import topics
    from ..protocol.transport import MqttTransport
    from ..dashboard.model import LiveModel
    from ..dashboard.server import DashboardServer
    from .record import mqtt_for

    mqtt_cfg = mqtt_for(args, cfg)
    tree = topics.Topics(mqtt_cfg.topic_prefix, mqtt_cfg.discovery_prefix)
    model = LiveModel(tree, mqtt_cfg.dead_after)
    transport = MqttTransport(mqtt_cfg, client_id=f"indisync-dashboard-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    model.attach(transport)
    try:
        server = DashboardServer(model, args.bind, args.port)
    except OSError as exc:
        raise IndisyncError(f"cannot listen on {args.bind}:{args.port}: {exc.strerror}; choose another --port") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    transport.start()
    server.start()
    try:
        if not transport.wait_connected(CONNECT_TIMEOUT_S):
            raise ProtocolError(f"no MQTT broker answered at {mqtt_cfg.host}:{mqtt_cfg.port} within "
                                f"{CONNECT_TIMEOUT_S:g} s; check --broker / mqtt.host and the credentials")
        print(f"dashboard: http://{args.bind if args.bind != '0.0.0.0' else 'localhost'}:{server.port}/ "
              f"(broker {mqtt_cfg.host}:{mqtt_cfg.port})", flush=True)
        stop.wait()
    finally:
        server.stop()
        transport.stop()
    return 0
