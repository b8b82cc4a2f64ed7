"""`indisync stop`: tell the master to end the night as at dawn — finish the frame under way (or
abort it with --abort), park, warm — and exit."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid

from ..errors import IndisyncError, ProtocolError

HELP = "end the night as at dawn: the master finishes (or with --abort aborts) the frame, parks and warms"

CONNECT_TIMEOUT_S = 5.0


def add_arguments(parser) -> None:
    parser.add_argument("--abort", action="store_true", help="abort the frame under way instead of finishing it")
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--master", metavar="NAME", help="the master's node name (default: found on the broker)")


def run(args, cfg) -> int:
    from ..config import parse_hostport
    from ..contracts import StopArgs
    from ..protocol import topics
    from ..protocol.commands import CommandClient
    from ..protocol.registry import NodeRegistry
    from ..protocol.transport import MqttTransport

    mqtt_cfg = cfg.mqtt
    if args.broker:
        host, port = parse_hostport(args.broker, mqtt_cfg.port)
        mqtt_cfg = dataclasses.replace(mqtt_cfg, host=host, port=port)
    tree = topics.Topics(mqtt_cfg.topic_prefix, mqtt_cfg.discovery_prefix)
    sender = f"stop-{uuid.uuid4().hex[:6]}"
    transport = MqttTransport(mqtt_cfg, client_id=f"indisync-stop-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    registry = NodeRegistry(mqtt_cfg.dead_after)
    registry.attach(transport, tree)
    client = CommandClient(transport, tree, sender)
    transport.start()
    try:
        if not transport.wait_connected(CONNECT_TIMEOUT_S):
            raise ProtocolError(f"no MQTT broker answered at {mqtt_cfg.host}:{mqtt_cfg.port} within "
                                f"{CONNECT_TIMEOUT_S:g} s; check --broker / mqtt.host and mqtt.port")
        master = args.master or (cfg.node.name if cfg.node.role == "master" else None) or _find_master(registry)
        stop = StopArgs(abort=bool(args.abort), reason="indisync stop")
        pending = client.send(master, stop.command, stop.to_wire())
        if not pending.finished.wait(stop.reply_timeout()):
            raise IndisyncError(f"the master {master!r} did not answer within {stop.reply_timeout():g} s; is it "
                                "running (indisync status)?")
        reply = pending.reply()
        if not reply.ok:
            raise IndisyncError(f"the master {master!r} refused: {reply.reason}")
        print(f"{master}: ending the night{' (frame aborted)' if args.abort else ''}: park, warm, exit")
        return 0
    finally:
        client.close()
        transport.stop()
        registry.stop()


def _find_master(registry, wait: float = 2.0) -> str:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        masters = [n.name for n in registry.nodes() if n.role == "master"]
        if masters:
            return masters[0]
        time.sleep(0.1)
    raise IndisyncError("no master seen on the broker; give --master NAME or --config with node.role: master")
