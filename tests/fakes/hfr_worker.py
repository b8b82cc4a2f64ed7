"""A stand-in for ``indisync.node.hfr_worker`` that misbehaves on purpose, chosen by the job's path:

- a path with ``die`` in it: the process exits at once (a crash, an OOM kill);
- ``hang``: it never answers;
- ``slow``: it answers after 1.5 s;
- anything else: HFR 1.5 px, 7 stars.

Started by ``FrameMeasurer(worker_module="tests.fakes.hfr_worker")`` exactly as the real one
(``python -m MODULE FD NICE``), and speaks the same messages.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.connection import Connection

FAKE_HFR, FAKE_STARS = 1.5, 7


def main(argv: list[str]) -> int:
    conn = Connection(int(argv[0]))
    niceness = os.nice(int(argv[1]))
    kind, _settings = conn.recv()
    conn.send(("ready", os.getpid(), niceness))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return 0
        if message[0] != "job":
            return 0
        _, seq, path, shape, _dtype = message
        if shape is not None:
            conn.recv_bytes()
        path = path or ""
        if "die" in path:
            os._exit(3)
        if "hang" in path:
            time.sleep(3600)
        if "slow" in path:
            time.sleep(1.5)
        conn.send(("result", seq, FAKE_HFR, FAKE_STARS, 0.01, None))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
