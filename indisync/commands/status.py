"""`indisync status`: every node on the broker in one table (or one JSON snapshot).

Reads the same retained ``status`` and ``state`` topics Home Assistant and Node-RED read; it
publishes nothing, so any broker user with read access can run it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
import uuid

from ..config import Config, parse_hostport
from ..errors import ProtocolError
from ..protocol import topics
from ..protocol.registry import NodeInfo, NodeRegistry
from ..guard.view import GuardBoard, describe as describe_guard
from ..dashboard.progress import describe, long_work
from ..dashboard.seasonview import status_lines as season_lines

HELP = ("show every node on the MQTT broker: role, online, phase, filter, exposure, HFR, focuser, "
        "free disk, clock offset to the master, heartbeat age, calibration under way; the master's season target and "
        "its progress per OTA and filter")

CONNECT_TIMEOUT_S = 5.0


def add_arguments(parser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--json", action="store_true", help="with --once: print {\"nodes\": [...]} as JSON")
    parser.add_argument("--wait", type=float, default=1.0,
                        help="at most this many seconds to collect retained messages (default 1)")
    parser.add_argument("--interval", type=float, default=1.0, help="live table refresh period in seconds")


def run(args, cfg: Config) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..protocol.transport import MqttTransport

    mqtt_cfg = cfg.mqtt
    if args.broker:
        host, port = parse_hostport(args.broker, mqtt_cfg.port)
        mqtt_cfg = dataclasses.replace(mqtt_cfg, host=host, port=port)
    tree = topics.Topics(mqtt_cfg.topic_prefix, mqtt_cfg.discovery_prefix)
    # A unique id: two viewers with the same id would keep kicking each other off the broker.
    transport = MqttTransport(mqtt_cfg, client_id=f"indisync-status-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    registry = NodeRegistry(mqtt_cfg.dead_after)
    registry.attach(transport, tree)
    guards = GuardBoard()  # the independent guard(s): one line each under the table
    guards.attach(transport, tree)
    # The broker sends a subscription's retained messages before it handles our next packet, so once
    # a marker we publish after subscribing comes back, every retained status/state is in: no fixed
    # wait (issue 13: status <= 0.5 s). A broker that denies us the publish: --wait bounds it.
    marker = f"{mqtt_cfg.topic_prefix}-status/{transport.client_id}"
    retained_in = threading.Event()
    transport.subscribe(marker, lambda msg: retained_in.set())
    transport.start()
    try:
        if not transport.wait_connected(CONNECT_TIMEOUT_S):
            raise ProtocolError(
                f"no MQTT broker answered at {mqtt_cfg.host}:{mqtt_cfg.port} within {CONNECT_TIMEOUT_S:g} s; "
                "check --broker / mqtt.host and mqtt.port, and the credentials"
            )
        transport.publish(marker, b"")
        retained_in.wait(args.wait)
        if args.once:
            nodes = snapshot(registry)
            if args.json:
                print(json.dumps({"nodes": nodes, "guards": guards.rows()}, indent=2))
            else:
                print(render_table(nodes, guards.rows()))
            return 0
        clear = "\x1b[H\x1b[J" if sys.stdout.isatty() else ""
        while True:
            table = render_table(snapshot(registry), guards.rows())
            stamp = time.strftime("%H:%M:%S")
            sys.stdout.write(f"{clear}indisync status  {mqtt_cfg.host}:{mqtt_cfg.port}  {stamp}  (Ctrl-C quits)\n{table}\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        transport.stop()
        registry.stop()


def node_row(info: NodeInfo, dead_after: float, now_mono: float) -> dict:
    state = info.state or {}
    age = info.seconds_since_heartbeat(now_mono)
    # Live heartbeats decide; with only retained messages (the first second) trust a fresh one.
    online = info.alive or (info.status == topics.ONLINE and age is not None and age < dead_after)
    exposure = state.get("exposure")
    return {
        "name": info.name,
        "role": state.get("role"),
        "online": bool(online),
        "status": info.status,
        "phase": state.get("phase"),
        "filter": state.get("filter"),
        "exposure": (
            {k: exposure.get(k) for k in ("id", "filter", "start", "duration", "progress")} if exposure else None
        ),
        "hfr": state.get("hfr"),
        "stars": state.get("stars"),
        "focuser_position": state.get("focuser_position"),
        "frames": state.get("frames"),
        "disk_free_gb": state.get("disk_free_gb"),  # free space of the node's storage.directory
        "version": state.get("version"),
        "seconds_since_heartbeat": round(age, 1) if age is not None else None,
        "last_state": info.state_ts,
        "error": state.get("error"),
        "clock_offset_s": state.get("clock_offset_s"),  # this node's clock minus the master's
        "clock_rtt_s": state.get("clock_rtt_s"),
        "night": state.get("night"),  # the master's night: {state, since, until, reason}
        # long work (cooling, waiting for dark, centring, flip, refocus, exposure): what it waits for, time left
        "work": long_work(state) if online else None,
        "temperature": state.get("temperature"),
        "cooling": state.get("cooling"),
        "centering": state.get("centering"),  # the master's last centring: {ok, error_arcsec, attempts, at, reason}
        "coalign": state.get("coalign"),  # each OTA against the master's field: {node: {offset_..., overlap_pct}}
        # the master's season (scheduler:): {target, project, since, reason, complete, progress: {node: {filter: counts}}}
        "season": state.get("season"),
        # a calibration set under way: {kind, mode, filter, exposure, adu, kept, count, set, sets} (WORK says it)
        "calib": state.get("calib"),
    }


def snapshot(registry: NodeRegistry) -> list[dict]:
    now = time.monotonic()
    return [node_row(info, registry.dead_after, now) for info in registry.nodes()]


_COLUMNS = ("NODE", "ROLE", "ONLINE", "PHASE", "FILTER", "EXPOSURE", "HFR", "FOCUSER", "FRAMES", "DISK", "CCD", "CLOCK",
            "HEARTBEAT", "WORK")


def _cells(row: dict) -> tuple[str, ...]:
    def dash(value, fmt="{}"):
        return "-" if value is None else fmt.format(value)

    exposure = row["exposure"]
    if exposure:
        progress = exposure.get("progress")
        pct = f"{progress * 100:.0f}% of " if progress is not None else ""
        exp = f"{pct}{exposure['duration']:g}s"
    else:
        exp = "-"
    return (
        row["name"],
        dash(row["role"]),
        "yes" if row["online"] else "NO",
        dash(row["phase"]),
        dash(row["filter"]),
        exp,
        dash(row["hfr"], "{:.2f}"),
        dash(row["focuser_position"]),
        dash(row["frames"]),
        dash(row.get("disk_free_gb"), "{:.1f}G"),
        _ccd(row),
        _clock_cell(row),
        dash(row["seconds_since_heartbeat"], "{:.1f}s ago"),
        describe(row.get("work")),
    )


def _clock_cell(row: dict) -> str:
    """The clock offset to the master in ms ('ref' on the master, '!' past the 100 ms warning)."""
    if row.get("role") == "master":
        return "ref"
    offset = row.get("clock_offset_s")
    if offset is None:
        return "-"
    ms = round(offset * 1000)  # an int, so under half a millisecond is "+0ms", never "-0ms" as :+.0f gave
    return f"{ms:+d}ms" + ("!" if abs(offset) > 0.1 else "")


def _ccd(row: dict) -> str:
    """'-2.9°C' or, while cooling, '-2.9→-3°C 1 min' (minutes left at the recent rate)."""
    temperature, cooling = row.get("temperature"), row.get("cooling")
    if temperature is None and not cooling:
        return "-"
    now = f"{temperature:.1f}" if temperature is not None else "?"
    if not cooling or cooling.get("reached"):
        return f"{now}°C"
    eta = cooling.get("eta_s")
    left = f" {max(1, round(eta / 60))} min" if eta is not None else ""
    return f"{now}→{cooling['setpoint']:g}°C{left}"


def render_table(rows: list[dict], guards: list[dict] = ()) -> str:
    guard_lines = [describe_guard(g) for g in guards]  # armed / acting / acted / blind, why and when
    if not rows:
        return "\n".join(["no nodes seen on this broker (yet)", *guard_lines])
    lines = [_COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    nights = [night_line(r) for r in rows if r.get("night")]
    acquire = [line for r in rows for line in acquire_lines(r)]
    seasons = [line for r in rows if r.get("season") for line in season_lines(r["name"], r["season"])]
    return "\n".join([table, *nights, *seasons, *acquire, *guard_lines])


def acquire_lines(row: dict) -> list[str]:
    """The master's last centring and one line per OTA of its co-alignment."""
    from ..acquire.coalign import describe_entry  # pure maths and formatting; no astropy

    lines = []
    centering = row.get("centering")
    if centering:
        when = f" at {centering['at'][11:19]} UTC" if centering.get("at") else ""
        error = centering.get("error_arcsec")
        if centering.get("ok"):
            lines.append(f"centred ({row['name']}): {error:.1f}\" from the target in {centering['attempts']} "
                         f"attempt(s){when}")
        else:
            lines.append(f"centring FAILED ({row['name']}){when}: {centering.get('reason') or '-'}")
    for name, entry in sorted((row.get("coalign") or {}).items()):
        lines.append(f"co-alignment ({row['name']}) {describe_entry(name, entry)}")
    return lines


def night_line(row: dict) -> str:
    """'night (ota1): parked since 23:10:04 until 23:20:04 UTC: weather alert (WEATHER_STATUS)'."""
    night = row["night"]

    def hhmmss(ts):
        return ts[11:19] if ts else None

    since, until = hhmmss(night.get("since")), hhmmss(night.get("until"))
    when = (f" since {since}" if since else "") + (f" until {until}" if until else "")
    return f"night ({row['name']}): {night['state']}{when} UTC: {night.get('reason') or '-'}"
