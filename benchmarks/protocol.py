"""Command round trip over a private mosquitto on loopback: master -> 1 and -> 8 slave processes.

For each round the master sends ``expose`` (duration 0: the stand-in slave returns at once) to
every slave at the same moment and records, per slave, the time from publishing the command to
receiving ``accepted``, and to receiving ``done``. Prints the figures as JSON.

    .venv/bin/python benchmarks/protocol.py [--rounds 200] [--slaves 1 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from indisync.config import MqttConfig
from indisync.protocol.node_link import NodeLink
from indisync.sim.broker import Mosquitto


def percentiles(values_s: list[float]) -> dict:
    ms = sorted(v * 1000 for v in values_s)
    if not ms:
        return {}

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]

    return {"p50": round(pct(50), 2), "p99": round(pct(99), 2), "max": round(ms[-1], 2), "mean": round(statistics.fmean(ms), 2)}


def start_slaves(broker: Mosquitto, count: int) -> list[subprocess.Popen]:
    procs = []
    for i in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "indisync.protocol.demo_node", "--port", str(broker.port), "--name", f"ota{i + 2}"],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a demo slave did not start")
    return procs


def run(broker: Mosquitto, slaves: int, rounds: int, warmup: int) -> dict:
    procs = start_slaves(broker, slaves)
    cfg = MqttConfig(host=broker.host, port=broker.port)
    master = NodeLink(cfg, "ota1", "master")
    try:
        if not master.start(wait=10):
            raise RuntimeError("master could not connect")
        client = master.command_client()
        names = [f"ota{i + 2}" for i in range(slaves)]
        accepted, done, lost = [], [], 0
        for r in range(warmup + rounds):
            pendings = [client.send(name, "expose", {"duration": 0}) for name in names]
            for p in pendings:
                try:
                    p.wait(10)
                except Exception:
                    lost += 1
                    continue
                if r >= warmup:
                    accepted.append(p.accepted_after)
                    done.append(p.finished_after)
                client.forget(p)
            time.sleep(0.005)
        client.close()
        return {
            "slaves": slaves,
            "rounds": rounds,
            "samples": len(accepted),
            "unanswered": lost,
            "cmd_to_accepted_ms": percentiles(accepted),
            "cmd_to_done_ms": percentiles(done),
        }
    finally:
        master.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--slaves", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    with Mosquitto() as broker:
        results = [run(broker, n, args.rounds, args.warmup) for n in args.slaves]
    print(json.dumps({
        "benchmark": "protocol command round trip (loopback mosquitto, QoS 1)",
        "broker": version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
