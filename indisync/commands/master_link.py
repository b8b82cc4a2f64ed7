"""The commands that ask the master for something over MQTT (`indisync stop`, `flats --panel`,
`darks`): connect to the broker (``--broker`` over the config's mqtt), find the master (``--master``,
else this node when it is the master, else the first master seen on the broker) and send it commands.

Nothing heavy at import: the MQTT layer is imported when a link is opened.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..errors import IndisyncError, ProtocolError

CONNECT_TIMEOUT_S = 5.0
FIND_MASTER_S = 2.0


@dataclasses.dataclass
class MasterLink:
    """An open link: the master's name and the client that sends to it."""

    master: str
    client: Any  # protocol.commands.CommandClient

    def send(self, command):
        """Send a command dataclass (indisync.contracts: ``command``, ``to_wire()``); its pending reply."""
        return self.client.send(self.master, command.command, command.to_wire())


@contextmanager
def master_link(args, cfg, sender: str, command: str,
                subscribe: Callable[[Any, Any], None] | None = None) -> Iterator[MasterLink]:
    """A link to the master for one command line: ``args.broker`` / ``args.master`` as the commands
    take them; ``sender`` names this client (``{sender}-{tag}``), ``command`` its MQTT client id
    (``indisync-{command}-{pid}-{tag}``); ``subscribe(transport, topics)`` subscribes before the
    transport starts. ProtocolError when no broker answers, IndisyncError when no master is found."""
    from ..config import parse_hostport
    from ..protocol import topics
    from ..protocol.commands import CommandClient
    from ..protocol.registry import NodeRegistry
    from ..protocol.transport import MqttTransport

    mqtt_cfg = cfg.mqtt
    if args.broker:
        host, port = parse_hostport(args.broker, mqtt_cfg.port)
        mqtt_cfg = dataclasses.replace(mqtt_cfg, host=host, port=port)
    tree = topics.Topics(mqtt_cfg.topic_prefix, mqtt_cfg.discovery_prefix)
    tag = uuid.uuid4().hex[:6]
    transport = MqttTransport(mqtt_cfg, client_id=f"indisync-{command}-{os.getpid()}-{tag}")
    registry = NodeRegistry(mqtt_cfg.dead_after)
    registry.attach(transport, tree)
    if subscribe is not None:
        subscribe(transport, tree)
    client = CommandClient(transport, tree, f"{sender}-{tag}")
    transport.start()
    try:
        if not transport.wait_connected(CONNECT_TIMEOUT_S):
            raise ProtocolError(f"no MQTT broker answered at {mqtt_cfg.host}:{mqtt_cfg.port} within "
                                f"{CONNECT_TIMEOUT_S:g} s; check --broker / mqtt.host and mqtt.port")
        master = args.master or (cfg.node.name if cfg.node.role == "master" else None) or find_master(registry)
        yield MasterLink(master, client)
    finally:
        client.close()
        transport.stop()
        registry.stop()


def find_master(registry, wait: float = FIND_MASTER_S) -> str:
    """The first master the registry sees within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        masters = [n.name for n in registry.nodes() if n.role == "master"]
        if masters:
            return masters[0]
        time.sleep(0.1)
    raise IndisyncError("no master seen on the broker; give --master NAME or --config with node.role: master")
