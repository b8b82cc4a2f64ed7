"""Issue 20 §4: Home Assistant's edges. README named the discovery topic
``homeassistant/sensor/indisync_{node}/…/config``; what is published is
``homeassistant/<component>/<node>/<entity>/config`` (a real Home Assistant 2023.12 took them all:
the topics stay, the text follows). And a slave whose clock agrees with the master's to within
50 µs from below showed a clock offset of "-0.0" there.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from indisync.protocol.discovery import discovery_messages
from indisync.protocol.topics import Topics

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_pattern() -> re.Pattern:
    rows = [line for line in README.read_text().splitlines()
            if line.startswith("| `homeassistant/") and "config" in line.split("|")[1]]
    assert len(rows) == 1, rows
    topic = rows[0].split("`")[1]
    assert topic == "homeassistant/<component>/<node>/<entity>/config", topic
    return re.compile("^" + re.sub(r"<[a-z]+>", "[^/]+", re.escape(topic)) + "$")


def test_readme_names_the_discovery_topics_that_are_published():
    pattern = _documented_pattern()
    tree = Topics("indisync", "homeassistant")
    published = discovery_messages(tree, "ota1", "master", "0") + discovery_messages(tree, "ota2", "slave", "0")
    assert len(published) >= 19  # the 19 Home Assistant 2023.12 took without a warning, and any added since
    for topic, config in published:
        assert pattern.match(topic), topic
        component, node, entity = topic.split("/")[1:4]
        assert json.loads(config)["unique_id"] == f"indisync_{node}_{entity}"
    assert "indisync_{node}/" not in README.read_text()


@pytest.mark.parametrize("offset", [-0.00001, -0.00004999, 0.0, -0.0, 0.00001])
def test_a_clock_offset_that_rounds_to_zero_is_zero_not_minus_zero(offset):
    from indisync.config import MqttConfig
    from indisync.protocol import messages
    from indisync.protocol.clock import ClockEstimate
    from indisync.protocol.node_link import NodeLink

    link = NodeLink(MqttConfig(), "ota2", "slave")  # never started: nothing goes on a wire
    link._publish_error = lambda message, topic, about: None
    link._on_clock_estimate(ClockEstimate(offset, -0.0, 3), "ota1")
    value = link.state["clock_offset_s"]
    assert value == 0.0 and math.copysign(1.0, value) == 1.0
    assert math.copysign(1.0, link.state["clock_rtt_s"]) == 1.0
    state = messages.make("state", "ota2", {"role": "slave", "phase": "idle", "version": "0",
                                             "clock_offset_s": value}).encode()
    assert b'"clock_offset_s":0.0' in state.replace(b" ", b"") and b"-0.0" not in state


def test_a_small_real_offset_keeps_its_sign():
    from indisync.config import MqttConfig
    from indisync.protocol.clock import ClockEstimate
    from indisync.protocol.node_link import NodeLink

    link = NodeLink(MqttConfig(), "ota2", "slave")
    link._publish_error = lambda message, topic, about: None
    link._on_clock_estimate(ClockEstimate(-0.00012, 0.002, 3), "ota1")
    assert link.state["clock_offset_s"] == -0.0001
