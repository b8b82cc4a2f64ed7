"""Home Assistant MQTT discovery for one node.

Each node announces a device (``indisync <node>``) with sensors for phase, filter, focuser
position, HFR, frames and exposure progress (a slave also its clock offset to the master), and a
connectivity binary sensor. The sensors
read the node's retained ``state`` envelope as it is (``value_json.payload...``) and use its
``status`` topic as availability, so Node-RED and MQTT Explorer see exactly what HA sees.

Configs are published (not retained) after each connect and again whenever
``homeassistant/status`` says ``online`` (HA's birth message after a restart).

Pure: returns (topic, json text) pairs.
"""

from __future__ import annotations

import json

from . import topics

# entity -> (component, display name, value template, extra config)
_ENTITIES: dict[str, tuple[str, str, str, dict]] = {
    "phase": ("sensor", "Phase", "{{ value_json.payload.phase }}", {"icon": "mdi:telescope"}),
    "filter": ("sensor", "Filter", "{{ value_json.payload.filter or 'none' }}", {"icon": "mdi:filter"}),
    "focuser_position": (
        "sensor",
        "Focuser position",
        "{{ value_json.payload.focuser_position }}",
        {"icon": "mdi:target", "unit_of_measurement": "steps", "state_class": "measurement"},
    ),
    "hfr": (
        "sensor",
        "HFR",
        "{{ value_json.payload.hfr }}",
        {"icon": "mdi:blur", "unit_of_measurement": "px", "state_class": "measurement"},
    ),
    "frames": (
        "sensor",
        "Frames",
        "{{ value_json.payload.frames }}",
        {"icon": "mdi:image-multiple", "state_class": "total_increasing"},
    ),
    "exposure_progress": (
        "sensor",
        "Exposure progress",
        "{{ ((value_json.payload.exposure.progress or 0) * 100) | round(0) "
        "if value_json.payload.exposure else 0 }}",
        {"icon": "mdi:progress-clock", "unit_of_measurement": "%"},
    ),
}
# A slave's clock minus the master's (protocol/clock.py); the master is the reference and has none.
_SLAVE_ENTITIES: dict[str, tuple[str, str, str, dict]] = {
    "clock_offset": (
        "sensor",
        "Clock offset to master",
        "{{ value_json.payload.clock_offset_s }}",
        {"icon": "mdi:clock-alert-outline", "unit_of_measurement": "s", "state_class": "measurement"},
    ),
}


def discovery_messages(topic_tree: topics.Topics, node: str, role: str, version: str) -> list[tuple[str, str]]:
    """The (topic, config JSON) pairs announcing ``node`` to Home Assistant."""
    device = {
        "identifiers": [f"indisync_{node}"],
        "name": f"indisync {node}",
        "manufacturer": "indisync",
        "model": f"{role} node",
        "sw_version": version,
    }
    availability = {
        "availability_topic": topic_tree.status(node),
        "payload_available": topics.ONLINE,
        "payload_not_available": topics.OFFLINE,
    }
    out = []
    entities = {**_ENTITIES, **(_SLAVE_ENTITIES if role == "slave" else {})}
    for entity, (component, name, template, extra) in entities.items():
        config = {
            "name": name,
            "unique_id": f"indisync_{node}_{entity}",
            "object_id": f"indisync_{node}_{entity}",
            "state_topic": topic_tree.state(node),
            "value_template": template,
            "device": device,
            **availability,
            **extra,
        }
        out.append((topic_tree.ha_config(component, node, entity), json.dumps(config, separators=(",", ":"))))
    online = {
        "name": "Online",
        "unique_id": f"indisync_{node}_online",
        "object_id": f"indisync_{node}_online",
        "state_topic": topic_tree.status(node),
        "payload_on": topics.ONLINE,
        "payload_off": topics.OFFLINE,
        "device_class": "connectivity",
        "device": device,
        # no availability: this entity must read 'off', not 'unavailable', when the node is gone
    }
    out.append((topic_tree.ha_config("binary_sensor", node, "online"), json.dumps(online, separators=(",", ":"))))
    for entity, (name, content_type) in IMAGES.items():
        image = {
            "name": name,
            "unique_id": f"indisync_{node}_{entity}",
            "object_id": f"indisync_{node}_{entity}",
            "image_topic": topic_tree.image(node, entity),  # raw bytes, published retained by the node
            "content_type": content_type,
            "device": device,
            **availability,
        }
        out.append((topic_tree.ha_config("image", node, entity), json.dumps(image, separators=(",", ":"))))
    return out


# image entity -> (display name, content type); the node publishes them on Topics.image(node, entity)
IMAGES: dict[str, tuple[str, str]] = {"vcurve": ("Latest V-curve", "image/png"),
                                      "frame": ("Latest frame", "image/jpeg")}


def guard_discovery_messages(topic_tree: topics.Topics, guard: str, version: str) -> list[tuple[str, str]]:
    """The guard's one entity: binary_sensor "Rig safe" (device class ``safety``).

    Home Assistant's safety class means "on" = UNSAFE, so the guard's ``rig_safe`` false is "on" and
    true is "off"; null (the guard cannot tell) renders "None", which Home Assistant shows as unknown.
    """
    device = {
        "identifiers": [f"indisync_guard_{guard}"],
        "name": f"indisync guard {guard}",
        "manufacturer": "indisync",
        "model": "guard",
        "sw_version": version,
    }
    config = {
        "name": "Rig safe",
        "unique_id": f"indisync_guard_{guard}_rig_safe",
        "object_id": f"indisync_guard_{guard}_rig_safe",
        "state_topic": topic_tree.guard(guard, topics.STATE),
        "value_template": ("{% set s = value_json.payload.rig_safe %}"
                           "{{ 'None' if s is none else ('true' if s else 'false') }}"),
        "payload_on": "false",  # rig_safe false: unsafe, which the safety class shows as "on"
        "payload_off": "true",
        "device_class": "safety",
        "device": device,
        "availability_topic": topic_tree.guard(guard, topics.STATUS),
        "payload_available": topics.ONLINE,
        "payload_not_available": topics.OFFLINE,
    }
    return [(topic_tree.ha_config("binary_sensor", guard, "rig_safe"), json.dumps(config, separators=(",", ":")))]
