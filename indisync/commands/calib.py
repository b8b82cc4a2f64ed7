"""`indisync flats` and `indisync darks`: calibration by hand.

``indisync flats [--plan]`` reads the night logs (no MQTT, no servers) and prints, per node, the flat
sets the lights since that node's last flats ask for, and the ``flats.always`` sets. ``indisync flats
--panel`` and ``indisync darks`` ask the master (over MQTT, as `indisync stop` does: master_link) to run them on
every node now; the sets come from the master's night logs. Each node's answer is printed: per set
what it kept and took (flats) or whether it was taken, skipped (a younger match kept) or waits (the
cooler, or nothing covers the OTA). A refusal or a failed run prints its reason and exits 1.

Both commands live here; cli.py registers them (COMMAND_TARGETS). Nothing heavy at import.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from typing import Callable

from ..errors import ConfigError, IndisyncError, ProtocolError

ACCEPT_TIMEOUT_S = 15.0  # the master acknowledges a command at once; silence this long: it is not running


# ---- arguments ----------------------------------------------------------------------------------
def _positive_seconds(text: str) -> float:
    from ..protocol.schema import MAX_EXPOSURE_S

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_EXPOSURE_S:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} s: allowed 0 < S <= {MAX_EXPOSURE_S:g}")
    return value


def _mqtt_arguments(parser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--master", metavar="NAME", help="the master's node name (default: found on the broker)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no progress lines)")


def flats_arguments(parser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true",
                      help="(the default) the sets needed per node and why, from the night logs; offline")
    mode.add_argument("--panel", action="store_true",
                      help="panel flats now on every node with indi.light_panel: the master runs them (MQTT)")
    parser.add_argument("--dir", metavar="DIR", help="--plan: the night logs (default record.directory, else "
                                                     "{storage.directory}/nights)")
    _mqtt_arguments(parser)


def darks_arguments(parser) -> None:
    parser.add_argument("--covered", action="store_true",
                        help="the OTAs are covered (caps on): take darks even without a closed dome or a shutter")
    parser.add_argument("--exposure", metavar="S", type=_positive_seconds, action="append", default=[],
                        help="a dark exposure beyond the lights' and darks.exposures (repeat for more)")
    _mqtt_arguments(parser)


# ---- indisync flats --plan ------------------------------------------------------------------------
def plan(cfg, directory, now: float) -> dict:
    """The flats the night logs ask for: {directory, lookback_days, always, sets: [row per node and set]},
    each row calib.needs.plan_rows's plus ``last_flats`` (ISO; None: never) and ``why``."""
    from ..calib.needs import last_flats, light_uses, needed_flats, plan_rows, read_entries

    lookback = cfg.flats.lookback_days
    entries = read_entries(directory, lookback, now)
    needs = needed_flats(entries, cfg.flats.always)
    done = last_flats(entries)
    # the lights since each set's last flats: the ones that make it needed
    since = [u for u in light_uses(entries) if u.at > done.get((u.node, u.flat), float("-inf"))]
    rows = plan_rows(needs, since)
    keys = [(node, fset) for node, sets in needs.items() for fset in sets]
    for row, key in zip(rows, keys):
        taken = done.get(key)
        row["last_flats"] = _iso(taken)
        if row["lights"]:
            row["why"] = f"{row['lights']} light(s) since " + ("its last flats" if taken is not None else
                                                                 f"the start of the logs (no flats in {lookback:g} d)")
        else:
            row["why"] = "flats.always"
    return {"directory": str(directory), "lookback_days": lookback, "nights_read": _nights(entries),
            "sets": rows}


def _nights(entries) -> int:
    return len({str(e.get("rx", ""))[:10] for e in entries if e.get("rx")})


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def render_plan(view: dict) -> str:
    rows = view["sets"]
    head = f"night logs: {view['directory']} (the last {view['lookback_days']:g} days)"
    if not rows:
        return (f"{head}\nno flats needed: no lights since each node's last flats, and no flats.always sets"
                if view["nights_read"] else
                f"{head}\nno night logs there in the last {view['lookback_days']:g} days, and no flats.always sets: "
                "nothing asks for flats (set --dir or record.directory if the logs are elsewhere)")
    lines = [head]
    width = max(len(r["set"]) for r in rows)
    for node in dict.fromkeys(r["node"] for r in rows):
        mine = [r for r in rows if r["node"] == node]
        lines.append(f"{node}: {len(mine)} set(s)")
        for r in mine:
            last = f", last light {_clock(r['last_light'])}" if r["last_light"] else ""
            flats = f", last flats {_clock(r['last_flats'])}" if r["last_flats"] else ""
            lines.append(f"  {r['set'].ljust(width)}  {r['why']}{last}{flats}")
    return "\n".join(lines)


def _clock(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


# ---- the master's calibrate -----------------------------------------------------------------------
def send_to_master(args, cfg, command, on_event: Callable[[str, str, dict], None] | None = None):
    """Send ``command`` (CalibrateArgs) to the master and wait for its final reply: (Reply, master name).
    ``on_event(node, type, payload)``: every calib_progress / calib_set_done while it runs."""
    from ..protocol import messages, topics
    from .master_link import master_link

    def subscribe(transport, tree) -> None:
        def on_message(msg) -> None:
            try:
                ref = tree.parse(msg.topic)
                envelope = messages.decode(msg.payload, topics.EVENT)
                if ref is not None and envelope.type in ("calib_progress", "calib_set_done"):
                    on_event(ref.node, envelope.type, envelope.payload)
            except Exception:  # noqa: BLE001 - a progress line is a courtesy: an odd event is skipped
                pass

        transport.subscribe(tree.every(topics.EVENT), on_message)

    with master_link(args, cfg, "calib", command.command, subscribe if on_event is not None else None) as link:
        master = link.master
        pending = link.send(command)
        if not pending.accepted.wait(ACCEPT_TIMEOUT_S) and not pending.finished.is_set():
            raise IndisyncError(f"the master {master!r} did not accept {command.command} within "
                                f"{ACCEPT_TIMEOUT_S:g} s; is it running (indisync status)?")
        if not pending.finished.wait(command.reply_timeout()):
            raise IndisyncError(f"the master {master!r} did not finish within {command.reply_timeout():g} s; "
                                "see indisync status and the night log")
        return pending.reply(), master


def progress_line(node: str, mtype: str, p: dict) -> str | None:
    """One line per calibration frame or set while the master's run goes on."""
    from ..dashboard.progress import CALIB_KINDS
    from ..dashboard.rigview import calib_frame_view, calib_set_view

    if mtype == "calib_set_done":
        return f"{node}: {calib_set_view(p)['text']}"
    kind = CALIB_KINDS.get(p.get("kind"), "frames")
    what = f"{kind} {p['filter']}" if p.get("filter") else kind
    return f"{node}: {what} {p.get('kept', '?')}/{p.get('count', '?')} {calib_frame_view(p)['text']}"


def _node_result(what: str, data):
    """The node's FlatsResult / DarksResult, or None when its answer does not read as one."""
    from ..contracts import DarksResult, FlatsResult

    try:
        return (FlatsResult if what == "panel" else DarksResult).from_wire(data)
    except (ProtocolError, TypeError, ValueError):
        return None


def _set_label(kind: str, data: dict) -> str:
    from ..calib.model import DarkSet, FlatSet

    if kind == "flat":
        return FlatSet.from_wire(data).label()
    return DarkSet.from_wire(data).label()


class SetsSeen:
    """The calib_set_done events seen while the master's run went on, by (node, set label): the
    master's reply leaves out each set's per-frame lists (its size), the events carry the ranges."""

    def __init__(self):
        self._lock = threading.Lock()
        self.events: dict[str, list[dict]] = {}

    def add(self, node: str, mtype: str, payload: dict) -> None:
        if mtype == "calib_set_done":
            with self._lock:
                self.events.setdefault(node, []).append(payload)

    def find(self, node: str, label: str) -> dict:
        with self._lock:
            for p in reversed(self.events.get(node, [])):
                try:
                    if _set_label("flat" if p.get("kind") == "flat" else "dark", p) == label:
                        return p
                except (KeyError, TypeError, ValueError):
                    continue
        return {}


def flats_lines(node: str, result, seen: SetsSeen | None = None) -> list[str]:
    from ..record.calibration import adu_range, exposure_range

    kept = sum(s["kept"] for s in result.sets)
    taken = sum(s["taken"] for s in result.sets)
    head = f"{node}: {result.status}"
    if result.sets:
        head += f", {len(result.sets)} set(s): {kept} kept of {taken} taken in {_duration(result.seconds)}"
    if result.reason:
        head += f": {result.reason}"
    lines = [head]
    labels = [_set_label("flat", s) for s in result.sets]
    width = max((len(x) for x in labels), default=0)
    for label, s in zip(labels, result.sets):
        parts = [f"{s['kept']} kept, {s['taken']} taken" + (f" ({s['discarded']} discarded)" if s.get("discarded")
                                                            else "")]
        event = seen.find(node, label) if seen is not None else {}
        if s.get("exposures"):
            parts.append(exposure_range(min(s["exposures"]), max(s["exposures"])))
        elif event.get("exposure_min") is not None or event.get("exposure_max") is not None:
            parts.append(exposure_range(event.get("exposure_min"), event.get("exposure_max")))
        if s.get("adu"):
            parts.append(adu_range(min(s["adu"]), max(s["adu"])))
        elif event.get("adu_min") is not None or event.get("adu_max") is not None:
            parts.append(adu_range(event.get("adu_min"), event.get("adu_max")))
        if s.get("brightness") is not None:
            parts.append(f"brightness {s['brightness']:g}" + {"search": " (trained now)",
                                                              "reused": " (trained before, re-used)"}.get(
                s.get("trained"), ""))
        line = f"  {label.ljust(width)}  {s['status']:<8} " + ", ".join(parts)
        lines.append(line + (f": {s['reason']}" if s.get("reason") else ""))
    return lines


def darks_lines(node: str, result) -> list[str]:
    counts: dict[str, int] = {}
    for s in result.sets:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    head = f"{node}: {result.status}"
    if counts:
        head += ", " + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" in {_duration(result.seconds)}"
    if result.reason:
        head += f": {result.reason}"
    lines = [head]
    labels = [_set_label("dark", s) for s in result.sets]
    width = max((len(x) for x in labels), default=0)
    for label, s in zip(labels, result.sets):
        lines.append(f"  {label.ljust(width)}  {s['status']:<8} {_dark_detail(s)}")
    return lines


def _dark_detail(s: dict) -> str:
    status = s["status"]
    if status == "taken" or (status == "stopped" and s.get("count")):
        at = f" at {s['temperature']:.1f} °C" if s.get("temperature") is not None else ""
        setpoint = f" (setpoint {s['setpoint']:g} °C)" if s.get("setpoint") is not None else ""
        return f"{s.get('count', 0)} frame(s){at}{setpoint}" + (f"; {s['reason']}" if s.get("reason") else "")
    if status == "skipped" and not s.get("reason") and s.get("age_days") is not None:
        return f"a matching set {s['age_days']:.1f} days old is kept"
    return s.get("reason") or "-"


def _duration(seconds: float) -> str:
    seconds = float(seconds or 0.0)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def render_outcome(reply, master: str, what: str, seen: SetsSeen | None = None) -> tuple[str, int]:
    """(the text printed, the exit code) of the master's reply to calibrate."""
    if not reply.ok:
        return f"the master {master} answered: failed: {reply.reason}", 1
    result = reply.result
    title = "panel flats" if what == "panel" else "darks"
    lines = [f"{title} ({master}): {result.status}" + (f": {result.reason}" if result.reason else "")]
    for node, data in sorted((result.nodes or {}).items()):
        typed = _node_result(what, data)
        if typed is None:  # not a node's result (CalibrateResult.nodes holds objects): shown as it came
            lines.append(f"{node}: {data.get('reason') or data.get('status') or data}")
        else:
            lines += flats_lines(node, typed, seen) if what == "panel" else darks_lines(node, typed)
    return "\n".join(lines), 1 if result.status == "failed" else 0


def outcome_json(reply, master: str, what: str, seen: SetsSeen | None = None) -> tuple[dict, int]:
    """The master's answer, and ``sets_done``: each node's calib_set_done events seen meanwhile (with
    the exposure and ADU ranges the answer leaves out)."""
    events = dict(seen.events) if seen is not None else {}
    if not reply.ok:
        return {"master": master, "what": what, "status": "failed", "reason": reply.reason, "nodes": None,
                "sets_done": events}, 1
    result = reply.result
    return ({"master": master, "what": what, "status": result.status, "reason": result.reason,
             "nodes": result.nodes or {}, "sets_done": events}, 1 if result.status == "failed" else 0)


def calibrate(args, cfg, command) -> int:
    """Ask the master, print each node's answer; exit 1 when it refused or failed."""
    name = "flats" if command.what == "panel" else "darks"
    seen = SetsSeen()
    lock = threading.Lock()

    def on_event(node, mtype, payload):
        seen.add(node, mtype, payload)
        if not args.json:
            line = progress_line(node, mtype, payload)
            if line:
                with lock:
                    print(line, flush=True)

    reply, master = send_to_master(args, cfg, command, on_event)
    if args.json:
        data, code = outcome_json(reply, master, command.what, seen)
        print(json.dumps(data, indent=2))
        return code
    text, code = render_outcome(reply, master, command.what, seen)
    print(f"indisync {name}: {text}" if not reply.ok else text, file=sys.stderr if not reply.ok else sys.stdout)
    return code


# ---- the two commands -----------------------------------------------------------------------------
def run_flats(args, cfg) -> int:
    from ..contracts import CalibrateArgs

    if args.panel:
        if args.dir:
            raise ConfigError("--dir is for --plan; for --panel the master reads its own night logs")
        return calibrate(args, cfg, CalibrateArgs(what="panel"))
    from ..record.service import nights_directory

    directory = args.dir or nights_directory(cfg)
    view = plan(cfg, directory, time.time())
    print(json.dumps(view, indent=2) if args.json else render_plan(view))
    return 0


def run_darks(args, cfg) -> int:
    from ..contracts import CalibrateArgs

    if len(args.exposure) > 64:
        raise ConfigError(f"{len(args.exposure)} --exposure values; at most 64 (darks.exposures takes more)")
    return calibrate(args, cfg, CalibrateArgs(what="darks", covered=bool(args.covered),
                                              exposures=tuple(args.exposure)))


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """What cli.py needs of a command: ``HELP``, ``add_arguments(parser)``, ``run(args, cfg)``."""

    HELP: str
    add_arguments: Callable
    run: Callable


flats = Subcommand(
    "flats per node: --plan (default) the sets the night logs ask for and why; --panel take panel flats now "
    "on every node with a light panel (through the master)", flats_arguments, run_flats)
darks = Subcommand(
    "the dark library now: the master has every node take darks and bias for the night's exposures (+ --exposure) "
    "at its setpoint, skipping sets younger than darks.max_age_days", darks_arguments, run_darks)
