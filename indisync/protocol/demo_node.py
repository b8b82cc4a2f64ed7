"""A stand-in node with no hardware: a NodeLink whose commands pretend to work.

Used by the MQTT integration tests (as a child process to kill -9) and by
benchmarks/protocol.py (as 1..8 slave processes). Not a real node: no devices, no files.

    python -m indisync.protocol.demo_node --port 1883 --name ota2 [--record FILE] [--state-dir DIR]

Prints ``ready`` on stdout once connected. ``--record FILE`` appends one line per executed
command (``<name> <id>``) so a test can count executions across processes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from pathlib import Path

from ..contracts import AbortResult, AutofocusResult, ExposeArgs, ExposeResult, SyncWaitArgs, SyncWaitResult
from .clock import NodeClock
from .settings import MqttConfig
from .messages import now_iso
from .node_link import NodeLink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--name", default="ota2")
    parser.add_argument("--role", default="slave", choices=("master", "slave"))
    parser.add_argument("--keepalive", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--username")
    parser.add_argument("--password-file")
    parser.add_argument("--record", help="append '<command> <id>' per executed command to this file")
    parser.add_argument("--expose-scale", type=float, default=0.0, help="sleep duration*scale in expose")
    parser.add_argument("--hang-sync", action="store_true", help="never answer sync_wait (a stuck node)")
    parser.add_argument("--state-dir", help="keep the executed command ids here (as a real node does under storage)")
    parser.add_argument("--clock-skew-s", type=float, default=0.0, help="tests only: shift this node's clock")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)

    cfg = MqttConfig(
        host=args.host,
        port=args.port,
        keepalive=args.keepalive,
        heartbeat=args.heartbeat,
        dead_after=max(args.heartbeat * 4, 8.0),
        username=args.username,
        password_file=args.password_file,
    )
    record_lock = threading.Lock()
    stop = threading.Event()

    def record(command) -> None:
        if args.record:
            with record_lock, open(args.record, "a") as f:
                f.write(f"{command.name} {command.id}\n")

    link: NodeLink

    def expose(command, progress):
        record(command)
        wanted = ExposeArgs.from_wire(command.args)
        start = now_iso()
        link.update_state(phase="exposing",
                          exposure={"id": command.id, "filter": wanted.filter, "start": start, "duration": wanted.duration})
        link.event("exposure_started", exposure_id=command.id, filter=wanted.filter, duration=wanted.duration, start=start)
        time.sleep(wanted.duration * args.expose_scale)
        link.update_state(phase="idle", exposure=None, frames=link.state["frames"] + 1)
        link.event("exposure_done", exposure_id=command.id, status="ok", filter=wanted.filter)
        return ExposeResult()  # no file: a stand-in writes nothing

    def sync_wait(command, progress):
        record(command)
        started = time.monotonic()
        if args.hang_sync:
            stop.wait()
        return SyncWaitResult(barrier=SyncWaitArgs.from_wire(command.args).barrier,
                              waited=round(time.monotonic() - started, 3))

    def abort(command, progress):
        record(command)
        return AbortResult(aborted=True)

    def autofocus(command, progress):
        record(command)
        return AutofocusResult(status="ok", position=0, start_position=0, frames=0)

    handlers = {"expose": expose, "sync_wait": sync_wait, "abort": abort, "autofocus": autofocus}
    executed = Path(args.state_dir) / f"{args.name}.commands.jsonl" if args.state_dir else None
    link = NodeLink(cfg, args.name, args.role, handlers=handlers, executed_path=executed,
                    clock=NodeClock(args.clock_skew_s))
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.start()
    if not link.transport.wait_connected(30):
        print("no broker", flush=True)
        return 1
    print("ready", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
