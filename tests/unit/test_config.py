from __future__ import annotations

import pytest

from indisync.config import Config, load_config, parse_hostport
from indisync.errors import ConfigError


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg.node.name == "ota1" and cfg.node.role == "slave"
    assert cfg.indi.port == 7624 and cfg.indi.camera == "CCD Simulator"
    assert cfg.mqtt.topic_prefix == "indisync" and cfg.mqtt.password_file is None
    assert cfg.storage.filename == "{node}_{target}_{filter}_{exposure}s_{seq:04d}"


def test_file_values_override_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("node: {name: ota-2, role: master}\nindi: {port: 7700, focuser: null}\n")
    cfg = load_config(path)
    assert (cfg.node.name, cfg.node.role, cfg.indi.port, cfg.indi.focuser) == ("ota-2", "master", 7700, None)
    assert cfg.indi.camera == "CCD Simulator"


def test_safety_park_retry_reaches_the_nights_plan(tmp_path):
    from types import SimpleNamespace

    from indisync.night.planning import build_plan

    cfg = load_config(data={"safety": {"park_retry": 7.5, "frame_retry": 12}})
    plan = build_plan(cfg, SimpleNamespace(mount=None), [], has_guider=False)
    assert plan.park_retry == 7.5 and plan.frame_retry == 12 and not plan.can_park
    assert build_plan(cfg, SimpleNamespace(mount=object()), [], has_guider=False).can_park
    assert load_config(None).safety.park_retry == 30.0


@pytest.mark.parametrize(
    "text, key, allowed",
    [
        ("node: {name: OTA 1}", "node.name", "lower-case"),
        ("node: {role: boss}", "node.role", "'master' | 'slave'"),
        ("indi: {port: 99999}", "indi.port", "1..65535"),
        ("indi: {port: abc}", "indi.port", "an integer"),
        ("mqtt: {topic_prefix: 'a/#'}", "mqtt.topic_prefix", "no wildcards"),
        ("storage: {filename: '{nod}'}", "storage.filename", "allowed fields"),
        ("nodes: {}", "nodes", "allowed keys: node, indi"),
        ("indi: {camra: x}", "indi.camra", "camera"),
        ("safety: {park_retry: 0}", "safety.park_retry", "seconds > 0"),
    ],
)
def test_errors_name_file_key_and_what_is_allowed(tmp_path, text, key, allowed):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and key in message and allowed in message


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_hostport():
    assert parse_hostport("10.0.0.2:7625", 7624) == ("10.0.0.2", 7625)
    assert parse_hostport("pi-ota1", 7624) == ("pi-ota1", 7624)
    with pytest.raises(ConfigError):
        parse_hostport("host:notaport", 7624)


def test_config_is_a_plain_dataclass():
    assert isinstance(load_config(data={}), Config)


@pytest.mark.parametrize("text, key", [
    ("safety: {stale_after: .nan}", "safety.stale_after"),
    ("night: {slew_timeout: .inf}", "night.slew_timeout"),
    ("focus: {timeout: -.inf}", "focus.timeout"),
    ("mqtt: {heartbeat: .NaN}", "mqtt.heartbeat"),
    ("mqtt: {command_expiry: .inf}", "mqtt.command_expiry"),
    ("alerts: {repeat_s: .inf}", "alerts.repeat_s"),
    ("guard: {grace: .nan}", "guard.grace"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, text, key):
    """YAML's .nan and .inf read as floats; `stale_after: .nan` made weather never go stale (every
    comparison with NaN is false). Every non-finite number is refused, and the message names its key."""
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert key in str(err.value) and "finite" in str(err.value)
