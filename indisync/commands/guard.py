"""`indisync guard`: the independent safety guard, a process of its own (configs/indisync-guard.service).

It watches the weather station, the mount and the dome over its own INDI connection, the sun, and
the master's heartbeat on MQTT; when the conditions call for a closed rig and the rig is still out
after ``guard.grace`` s, it aborts the exposures it can reach, parks the mount, closes the dome and
raises an alarm. It never unparks or opens anything. It imports nothing from indisync.night or
indisync.node, so a defect there cannot disable it.
"""

from __future__ import annotations

import dataclasses

HELP = ("run the independent safety guard: parks the mount and closes the dome when the weather, the sun "
        "or a dead master call for it and the master has not (never unparks or opens)")


def add_arguments(parser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker, overriding mqtt.host/mqtt.port")
    parser.add_argument("--name", help="overrides guard.name from the config")
    parser.add_argument("--grace", type=float, help="overrides guard.grace (seconds)")


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    import signal
    import threading

    from ..config import parse_hostport
    from ..configtypes import ConfigValueError
    from ..errors import ConfigError
    from ..guard.service import Guard

    if args.broker:
        host, port = parse_hostport(args.broker, cfg.mqtt.port)
        cfg = cfg.replace(mqtt=dataclasses.replace(cfg.mqtt, host=host, port=port))
    if args.name or args.grace is not None:
        guard = dataclasses.replace(cfg.guard, name=args.name or cfg.guard.name,
                                    grace=cfg.guard.grace if args.grace is None else args.grace)
        try:
            guard.validate()
        except ConfigValueError as exc:
            raise ConfigError(f"--name/--grace: guard.{exc}") from None
        cfg = cfg.replace(guard=guard)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    return Guard(cfg).run(stop)
