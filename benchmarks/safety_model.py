"""The night's safety model at scale: the hypothesis state machine of tests/unit/test_night_model.py
(the REAL machine and executor over the fake rig, a fake clock; weather flips, clock jumps, restarts at
any hour, device faults, a full disk, a lost guide star, `stop`) for many examples, with the same
invariants checked after every step (I1 park and close while unsafe, no motion during a park; I2 never
unparked outside the window; I3 done after the window's end; I6 frames counted = frames on disk; no
exception escapes a thread).

Runs in chunks of ``--chunk`` examples, each with its own hypothesis seed (``--seed`` + chunk number),
no shrinking, so that a violation is reported (with hypothesis's falsifying steps) and the run goes
on. Prints one JSON object:

- examples, steps, violations (the goal: 0) and, for each, the chunk's seed and hypothesis's report;
- longest_unsafe_open_s: the longest stretch, from the stand-in devices' logs, while an executor ran,
  with the weather device unsafe (Alert, no WEATHER_STATUS, indiserver gone) and the dome open or the
  mount out, in wall-clock seconds, and longest_unsafe_open_fake_s, the same on the executor's clock
  (a park refused or the indiserver gone makes it a multiple of safety.park_retry, 5 s here, and a
  clock jump while the indiserver is gone adds the jump); ..._no_fault_...: the same over the stretches
  with no park failed since the rig was last parked and closed (no fault in the way);
- states_covered / states_missing and transitions_covered, from every executor's timeline;
- restarts, nights_done, park_errors, frames, rain_while_active (the weather turning unsafe with the
  mount out), and the run's seconds.

    .venv/bin/python benchmarks/safety_model.py                 # 10,000 examples (about 14 min on 2 cores)
    .venv/bin/python benchmarks/safety_model.py --examples 300  # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hypothesis.core  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.reporting import with_reporter  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

import tests.unit.test_night_model as model  # noqa: E402
from indisync.night.machine import State  # noqa: E402


def run_chunk(examples: int, steps: int, seed: int) -> tuple[int, list[str]]:
    """Run ``examples`` examples with hypothesis seed ``seed``: (violations, hypothesis's report lines)."""
    lines: list[str] = []
    hypothesis.core.global_force_seed = seed
    try:
        with with_reporter(lines.append):
            run_state_machine_as_test(model.NightModel, settings=settings(
                max_examples=examples, stateful_step_count=steps, deadline=None, database=None, derandomize=False,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False))
    except BaseException as exc:  # noqa: BLE001 - a violation (or a crash of the harness): counted, reported
        if isinstance(exc, KeyboardInterrupt):
            raise
        subs = getattr(exc, "exceptions", None) or [exc]
        lines += [f"{type(e).__name__}: {str(e)[:2000]}" for e in subs]
        return len(subs), lines
    finally:
        hypothesis.core.global_force_seed = None
    return 0, []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000, help="examples to run (default 10000)")
    ap.add_argument("--steps", type=int, default=15, help="rules per example (default 15)")
    ap.add_argument("--chunk", type=int, default=250, help="examples per hypothesis run (default 250)")
    ap.add_argument("--seed", type=int, default=20261205, help="seed of the first chunk (default 20261205)")
    args = ap.parse_args(argv)
    started = time.monotonic()
    violations, reports = 0, []
    chunk = 0
    while model.STATS.examples < args.examples:
        want = min(args.chunk, args.examples - model.STATS.examples)
        found, lines = run_chunk(want, args.steps, args.seed + chunk)
        if found:
            violations += found
            reports.append({"seed": args.seed + chunk, "report": lines[-40:]})
            print(f"chunk {chunk} (seed {args.seed + chunk}): {found} violation(s)", file=sys.stderr)
        chunk += 1
        print(f"{model.STATS.examples} examples, {time.monotonic() - started:.0f} s", file=sys.stderr)
    s = model.STATS
    seconds = time.monotonic() - started
    all_states = [state.value for state in State]
    print(json.dumps({
        "examples": s.examples,
        "steps": s.steps,
        "violations": violations,
        "violation_reports": reports,
        "longest_unsafe_open_s": round(s.longest_unsafe_open_s, 4),
        "longest_unsafe_open_fake_s": round(s.longest_unsafe_open_fake_s, 1),
        "longest_unsafe_open_no_fault_s": round(s.longest_unsafe_open_no_fault_s, 4),
        "longest_unsafe_open_no_fault_fake_s": round(s.longest_unsafe_open_no_fault_fake_s, 1),
        "states_covered": sorted(s.states),
        "states_missing": [st for st in all_states if st not in s.states],
        "transitions_covered": len(s.transitions),
        "transitions": sorted(f"{a or '(start)'} -> {b}" for a, b in s.transitions),
        "restarts": s.restarts,
        "nights_done": s.nights_done,
        "park_errors": s.park_errors,
        "frames": s.frames,
        "rain_while_active": s.rain_while_active,
        "unsafe_checks": s.unsafe_checks,
        "seconds": round(seconds, 1),
        "examples_per_s": round(s.examples / seconds, 1) if seconds else None,
    }, indent=2))
    print(f"took {seconds:.1f} s", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
