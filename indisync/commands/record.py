"""`indisync record`: write the rig's night log from a machine that only watches (the master
writes one too, unless record.enabled is false)."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import uuid

from ..config import Config, parse_hostport
from ..errors import ProtocolError

HELP = "append every node's events and states to the night log ({storage.directory}/nights/YYYY-MM-DD.jsonl)"

CONNECT_TIMEOUT_S = 10.0


def add_arguments(parser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--dir", metavar="DIR", help="where night logs go (default record.directory, "
                        "else {storage.directory}/nights)")
    parser.add_argument("--report", action="store_true", help="write the night report when stopped (SIGINT/SIGTERM)")


def mqtt_for(args, cfg: Config):
    mqtt_cfg = cfg.mqtt
    if getattr(args, "broker", None):
        host, port = parse_hostport(args.broker, mqtt_cfg.port)
        mqtt_cfg = dataclasses.replace(mqtt_cfg, host=host, port=port)
    return mqtt_cfg


def run(args, cfg: Config) -> int:
    from ..protocol import topics
    from ..protocol.transport import MqttTransport
    from ..record.service import NightRecording

    mqtt_cfg = mqtt_for(args, cfg)
    if args.dir:
        cfg = cfg.replace(record=dataclasses.replace(cfg.record, directory=args.dir, report=args.report))
    else:
        cfg = cfg.replace(record=dataclasses.replace(cfg.record, report=args.report))
    transport = MqttTransport(mqtt_cfg, client_id=f"indisync-record-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    recording = NightRecording(cfg, transport, topics.Topics(mqtt_cfg.topic_prefix, mqtt_cfg.discovery_prefix))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    transport.start()
    try:
        if not transport.wait_connected(CONNECT_TIMEOUT_S):
            raise ProtocolError(f"no MQTT broker answered at {mqtt_cfg.host}:{mqtt_cfg.port} within "
                                f"{CONNECT_TIMEOUT_S:g} s; check --broker / mqtt.host and the credentials")
        print(f"recording {mqtt_cfg.host}:{mqtt_cfg.port} into {recording.writer.directory}", flush=True)
        stop.wait()
    finally:
        transport.stop()
        if args.report:
            path = recording.write_report()
            if path:
                print(f"night report: {path}")
        recording.close()
    return 0
