"""The MQTT topic tree, built and parsed in one place.

    {prefix}/{node}/status   "online" / "offline", retained; "offline" is also the Last Will
    {prefix}/{node}/state    retained JSON envelope, on every change and as a heartbeat
    {prefix}/{node}/event    JSON envelopes, not retained
    {prefix}/{node}/cmd      commands addressed to the node, never retained
    {prefix}/{node}/reply    the node's answers to commands
    {prefix}/{node}/clock    clock offset round trips: a slave's time_request, the master's time_reply
    {discovery}/status       Home Assistant's birth/will ("online" asks for rediscovery)

The independent guard (`indisync guard`) has a branch of its own, three levels under the prefix, so
``parse`` (and every node's ``+/state`` subscription) ignores it:

    {prefix}/guard/{name}/status   "online" / "offline", retained; "offline" is its Last Will
    {prefix}/guard/{name}/state    retained ``guard_state`` envelope, on every change and every few s
    {prefix}/guard/{name}/event    its ``alarm`` envelopes

Pure: no paho here, so the topic rules are tested with plain strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATUS = "status"
STATE = "state"
EVENT = "event"
CMD = "cmd"
REPLY = "reply"
CLOCK = "clock"
KINDS = (STATUS, STATE, EVENT, CMD, REPLY, CLOCK)

ONLINE = "online"
OFFLINE = "offline"

NODE_NAME = re.compile(r"^[a-z0-9-]{1,64}\Z")  # NodeConfig.name's rule; \Z: '$' would allow a trailing newline


@dataclass(frozen=True)
class TopicRef:
    node: str
    kind: str


class Topics:
    """Topic names under one prefix (``MqttConfig.topic_prefix``)."""

    def __init__(self, prefix: str = "indisync", discovery_prefix: str = "homeassistant"):
        self.prefix = prefix.strip("/")
        self.discovery_prefix = discovery_prefix.strip("/")

    def of(self, node: str, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown topic kind {kind!r}; allowed: {', '.join(KINDS)}")
        if not NODE_NAME.match(node):
            raise ValueError(f"node name {node!r} is not allowed in a topic: use [a-z0-9-]")
        return f"{self.prefix}/{node}/{kind}"

    def status(self, node: str) -> str:
        return self.of(node, STATUS)

    def state(self, node: str) -> str:
        return self.of(node, STATE)

    def event(self, node: str) -> str:
        return self.of(node, EVENT)

    def cmd(self, node: str) -> str:
        return self.of(node, CMD)

    def reply(self, node: str) -> str:
        return self.of(node, REPLY)

    def clock(self, node: str) -> str:
        return self.of(node, CLOCK)

    def image(self, node: str, name: str) -> str:
        """``{prefix}/{node}/image/{name}``: retained raw image bytes (Home Assistant ``image`` entities).
        Three levels under the prefix, so ``parse`` (and every JSON subscriber) ignores them."""
        if not re.match(r"^[a-z0-9_]{1,32}\Z", name):
            raise ValueError(f"image name {name!r}: use [a-z0-9_]")
        return f"{self.of(node, STATE).rsplit('/', 1)[0]}/image/{name}"

    def every(self, kind: str) -> str:
        """The subscription filter for ``kind`` of every node, e.g. ``indisync/+/state``."""
        if kind not in KINDS:
            raise ValueError(f"unknown topic kind {kind!r}; allowed: {', '.join(KINDS)}")
        return f"{self.prefix}/+/{kind}"

    def parse(self, topic: str) -> TopicRef | None:
        """``indisync/ota2/state`` -> TopicRef('ota2', 'state'); None for anything else."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 2 or parts[1] not in KINDS or not NODE_NAME.match(parts[0]):
            return None
        return TopicRef(parts[0], parts[1])

    # -- the guard's branch -------------------------------------------------------------------------
    GUARD_KINDS = (STATUS, STATE, EVENT)

    def guard(self, name: str, kind: str) -> str:
        if kind not in self.GUARD_KINDS:
            raise ValueError(f"unknown guard topic kind {kind!r}; allowed: {', '.join(self.GUARD_KINDS)}")
        if not NODE_NAME.match(name):
            raise ValueError(f"guard name {name!r} is not allowed in a topic: use [a-z0-9-]")
        return f"{self.prefix}/guard/{name}/{kind}"

    def guard_every(self, kind: str) -> str:
        """The subscription filter for ``kind`` of every guard, e.g. ``indisync/guard/+/state``."""
        if kind not in self.GUARD_KINDS:
            raise ValueError(f"unknown guard topic kind {kind!r}; allowed: {', '.join(self.GUARD_KINDS)}")
        return f"{self.prefix}/guard/+/{kind}"

    def parse_guard(self, topic: str) -> TopicRef | None:
        """``indisync/guard/guard/state`` -> TopicRef('guard', 'state'); None for anything else."""
        head = self.prefix + "/guard/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 2 or parts[1] not in self.GUARD_KINDS or not NODE_NAME.match(parts[0]):
            return None
        return TopicRef(parts[0], parts[1])

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def ha_config(self, component: str, node: str, entity: str) -> str:
        # The node name is a whole topic level so a mosquitto ACL `pattern` with %u can own it.
        return f"{self.discovery_prefix}/{component}/{node}/{entity}/config"
