"""`python -m indisync.sim serve`: run indiserver with the INDI simulators until Ctrl-C.

For trying indisync by hand: it starts the simulators with the synthetic `gsc` star catalogue on
PATH (so light frames have stars) and prints the address to pass as --indi.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .indi import ALL_SIMULATORS, IndiServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m indisync.sim")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run indiserver with the INDI simulators")
    serve.add_argument("--port", type=int, default=7624, help="TCP port (default 7624; 0 = a free one)")
    serve.add_argument("--time-factor", type=float, default=None,
                       help="simulator SIM_TIME_FACTOR: 0.01 makes a 600 s exposure take 6 s")
    serve.add_argument("--drivers", nargs="+", default=list(ALL_SIMULATORS), choices=list(ALL_SIMULATORS))
    args = parser.parse_args(argv)

    server = IndiServer(drivers=args.drivers, port=args.port or None, time_factor=args.time_factor)
    server.start()
    print(f"indiserver with {', '.join(server.devices)} at {server.address} (log: {server.log_path}); "
          "Ctrl-C stops it", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                print("indiserver exited:\n" + server.log_text()[-2000:], file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
