"""`indisync run --role master|slave`: bring a node up and keep it running."""

from __future__ import annotations

import dataclasses


HELP = "run this camera's node: master (sequence, mount, guider) or slave (follows the master)"


def add_arguments(parser) -> None:
    parser.add_argument("--role", choices=["master", "slave"], help="overrides node.role from the config")
    parser.add_argument("--name", help="overrides node.name from the config")
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker, overriding mqtt.host/mqtt.port")


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..node.base import run_node

    from ..config import parse_hostport

    node_cfg = dataclasses.replace(cfg.node, role=args.role or cfg.node.role, name=args.name or cfg.node.name)
    cfg = cfg.replace(node=node_cfg)
    if args.broker:
        host, port = parse_hostport(args.broker, cfg.mqtt.port)
        cfg = cfg.replace(mqtt=dataclasses.replace(cfg.mqtt, host=host, port=port))
    if cfg.node.role == "master":
        from ..node.master import MasterNode

        return run_node(MasterNode(cfg))
    from ..node.slave import SlaveNode

    return run_node(SlaveNode(cfg))
