"""HFR of a slave's frames, measured after the frame is written and the master has its reply.

indi-allsky hands each frame to a worker; so do we: the expose reply (and so the master's next
start) never waits for star detection. The worker is a separate, niced process
(``indisync.node.hfr_worker``, ``slave.measure_nice``), not a thread: a measurement running beside
the next ``expose`` command must not hold this process's GIL or a core at the command's priority
(issue 18: a thread put the start skew's p99 at 221 ms with eight slaves on two cores).

Nor does it measure while a command is due: after a frame's reply the master's next ``expose``
is on its way, so a queued frame waits ``slave.measure_after_reply`` s, or until the next exposure
has started (``exposure_starting``; ``slave.measure_after_start`` s after its shutter opens, a
scheduled start included) and is then measured while that one exposes. On this rig's benchmark the
worker was busy at 9 of 10 command arrivals before this gate, and the niced worker alone still
doubled the command's way to the camera with eight slaves on two cores.

One feeder thread here owns the worker: it starts it (once, at ``start``), hands it one job at a
time, waits for the answer (bounded by ``slave.measure_timeout``) and passes every result to
``on_result`` (the slave publishes ``frame_measured`` and updates ``hfr``/``stars`` in its
state), however late it comes. A worker that dies is started again and the frame tried once more;
one that hangs past the timeout is killed and started again. Either way the frame's result is
still reported, with ``error`` saying why it has no HFR: never lost in silence.

The queue is bounded, and a full queue never drops a frame: the frame is then measured inline, in
the caller's thread, and a warning says so (the reply waits for that one measurement). A queued job
names the frame's file (the worker reads it), so it holds no pixels; a job with pixels instead
(``image``) holds them (uint16: 2 bytes a pixel, 52 MB at 26 MP) until the worker has them.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable

from .hfr_worker import frame_hfr, read_pixels

log = logging.getLogger(__name__)

QUEUE_CAPACITY = 2  # frames waiting: a measurement (< 1 s for 26 MP) is far shorter than any exposure
WORKER_START_TIMEOUT_S = 60.0  # a Python start on a loaded Pi takes seconds, never a minute
WORKER_STOP_TIMEOUT_S = 5.0
WORKER_MODULE = "indisync.node.hfr_worker"
ATTEMPTS = 2  # a frame whose worker died is tried once more on a new worker (a frame that kills it twice is reported)


@dataclass
class MeasureJob:
    image: Any = field(repr=False)  # the frame's pixels, or None: the worker reads ``path``
    exposure_id: str
    file: str
    filter_name: str | None
    path: str | None = None  # the frame on disk; used when ``image`` is None


@dataclass
class MeasureResult:
    job: MeasureJob
    hfr: float | None
    stars: int | None
    seconds: float  # time the measurement took
    inline: bool  # True: the queue was full and the caller measured it itself
    error: str | None = None  # not measured because the worker failed (died twice, hung, the node stopped)


class WorkerFailed(Exception):
    """The worker process died, or answered out of turn."""


class WorkerHung(WorkerFailed):
    """The worker did not answer within its timeout."""


class _Worker:
    """One running ``hfr_worker`` process and our end of its socket. Used by the feeder thread only."""

    def __init__(self, settings, nice: int, start_timeout: float, module: str = WORKER_MODULE):
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, str(theirs.fileno()), str(nice)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                close_fds=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.seq = 0
        try:
            self.conn.send(("settings", settings))
            answer = self._receive(start_timeout, "start")
        except BaseException:
            self.kill()
            raise
        if not (isinstance(answer, tuple) and len(answer) == 3 and answer[0] == "ready"):
            self.kill()
            raise WorkerFailed(f"the HFR worker answered {str(answer)[:80]} instead of 'ready'")
        _, self.pid, self.niceness = answer

    def measure(self, job: MeasureJob, timeout: float) -> tuple[float | None, int | None, float, str | None]:
        self.seq += 1
        try:
            if job.image is not None:
                import numpy as np

                pixels = np.ascontiguousarray(job.image)
                self.conn.send(("job", self.seq, job.path, pixels.shape, pixels.dtype.str))
                self.conn.send_bytes(memoryview(pixels).cast("B"))  # no copy; the GIL is let go while it writes
            else:
                self.conn.send(("job", self.seq, job.path, None, None))
        except OSError as exc:
            raise WorkerFailed(f"the HFR worker (pid {self.proc.pid}) is gone: {self._exit_text()} ({exc})") from None
        answer = self._receive(timeout, "measure " + job.file)
        if not (isinstance(answer, tuple) and len(answer) == 6 and answer[:2] == ("result", self.seq)):
            raise WorkerFailed(f"the HFR worker answered {str(answer)[:80]} to job #{self.seq}")
        return answer[2:]

    def _receive(self, timeout: float, doing: str):
        try:
            if not self.conn.poll(timeout):
                raise WorkerHung(f"the HFR worker (pid {self.proc.pid}) did not {doing} within {timeout:g} s")
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerFailed(f"the HFR worker (pid {self.proc.pid}) died: {self._exit_text()}") from None

    def _exit_text(self) -> str:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = WORKER_STOP_TIMEOUT_S) -> None:
        try:
            self.conn.send(("stop",))
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("HFR worker (pid %s) did not stop within %g s: killed", self.proc.pid, timeout)
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("HFR worker (pid %s) survives SIGKILL", self.proc.pid)
        self.conn.close()


class FrameMeasurer:
    """``submit`` frames; each one's result reaches ``on_result`` from the feeder thread (or, with a
    full queue, from the caller's thread, before ``submit`` returns)."""

    def __init__(self, cfg, on_result: Callable[[MeasureResult], None], capacity: int = QUEUE_CAPACITY,
                 nice: int | None = None, timeout: float | None = None,
                 start_timeout: float = WORKER_START_TIMEOUT_S, worker_module: str = WORKER_MODULE):
        self.cfg = cfg
        self.on_result = on_result
        self.nice = cfg.slave.measure_nice if nice is None else nice
        self.timeout = cfg.slave.measure_timeout if timeout is None else timeout
        self.after_reply = cfg.slave.measure_after_reply
        self.after_start = cfg.slave.measure_after_start
        self._gate = threading.Condition()
        self._not_before = 0.0  # time.monotonic() before which no measurement starts
        self.start_timeout = start_timeout
        self.worker_module = worker_module  # tests start a stand-in that crashes or hangs on purpose
        self._jobs: queue.Queue[MeasureJob | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._worker: _Worker | None = None  # the feeder thread's alone
        self._closing = threading.Event()
        self.inline_count = 0  # frames measured inline because the queue was full
        self.restarts = 0  # workers started after the first (death, hang)
        self.worker_pid: int | None = None

    def start(self) -> None:
        """Start the feeder thread, which starts the worker at once (so it is up, niced, before the
        first frame). ``submit`` starts them too, if this was not called."""
        self._ensure_thread()

    def submit(self, job: MeasureJob) -> bool:
        """Queue ``job``; True if queued, False if the queue was full and it was measured here.
        A queued frame is measured ``slave.measure_after_reply`` s from now (the master's next
        command is probably on its way), or sooner if ``exposure_starting`` says the next exposure
        has begun: then it is measured while that one exposes."""
        self._ensure_thread()
        self._hold(self.after_reply)
        try:
            self._jobs.put_nowait(job)
            return True
        except queue.Full:
            self.inline_count += 1
            log.warning("HFR queue full (%d frames waiting): measuring %s inline; this reply waits for it",
                        self._jobs.maxsize, job.file)
            self._deliver(self._measure_here(job))
            return False

    def exposure_starting(self, start_at: float | None = None) -> None:
        """The node is starting an exposure (its shutter opens at ``start_at``, a ``time.time()``;
        None: now): measuring may begin ``slave.measure_after_start`` s after that, while it exposes,
        and not before, so the camera's start never competes with a measurement."""
        delay = 0.0 if start_at is None else max(0.0, min(start_at - time.time(), 60.0))
        self._hold(delay + self.after_start, replace=True)

    def _hold(self, seconds: float, replace: bool = False) -> None:
        with self._gate:
            until = time.monotonic() + seconds
            self._not_before = until if replace else max(self._not_before, until)
            self._gate.notify_all()

    def _wait_for_gate(self) -> None:
        """Until the moment measuring may start (bounded: the gate is always a finite time ahead)."""
        with self._gate:
            while not self._closing.is_set():
                left = self._not_before - time.monotonic()
                if left <= 0:
                    return
                self._gate.wait(left)

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued frame has been measured (bounded: False after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Measure what is queued (up to ``timeout`` s), then stop the worker. Frames still waiting
        then are reported as not measured (``error``), not dropped in silence."""
        thread = self._thread
        if thread is None:
            return
        self._hold(0.0, replace=True)  # nothing more is coming: measure what is left now
        if not self.wait_idle(timeout):
            log.warning("HFR worker: %d frame(s) left unmeasured at shutdown", self._jobs.unfinished_tasks)
            self._closing.set()
            with self._gate:
                self._gate.notify_all()
            worker = self._worker
            if worker is not None:
                worker.proc.kill()  # the feeder sees it die and reports the frame in hand
        try:
            self._jobs.put(None, timeout=WORKER_STOP_TIMEOUT_S)
        except queue.Full:
            pass
        thread.join(timeout=2 * WORKER_STOP_TIMEOUT_S)
        if thread.is_alive():
            log.error("HFR feeder thread did not end within %g s", 2 * WORKER_STOP_TIMEOUT_S)

    # ---- the feeder thread ------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hfr-feeder", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._start_worker()
        except Exception:  # noqa: BLE001 - said here; the first job tries again
            log.exception("HFR worker: could not start it; the next frame tries again")
        try:
            while True:
                job = self._jobs.get()
                try:
                    if job is None:
                        return
                    self._wait_for_gate()
                    self._deliver(self._measure_in_worker(job))
                except BaseException:  # noqa: BLE001 - never die in silence; the next frame is measured
                    log.exception("HFR feeder: measuring %s failed", getattr(job, "file", "?"))
                finally:
                    self._jobs.task_done()
        finally:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None

    def _start_worker(self) -> _Worker:
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
            self.restarts += 1
        worker = _Worker(self.cfg.analysis, self.nice, self.start_timeout, self.worker_module)
        self._worker, self.worker_pid = worker, worker.pid
        log.info("HFR worker up: pid %s at niceness %s", worker.pid, worker.niceness)
        return worker

    def _measure_in_worker(self, job: MeasureJob) -> MeasureResult:
        why = None
        for attempt in range(1, ATTEMPTS + 1):
            if self._closing.is_set():
                why = "the node stopped before it was measured"
                break
            try:
                worker = self._start_worker()
                hfr, stars, seconds, problem = worker.measure(job, self.timeout)
            except (WorkerFailed, OSError) as exc:
                why = str(exc)
                again = attempt < ATTEMPTS and not isinstance(exc, WorkerHung)  # a hang would hang again
                log.error("HFR of %s: %s; %s", job.file, why,
                          "starting a new worker and trying again" if again else "reported as not measured")
                if self._worker is not None:
                    self._worker.kill()  # dead or hung: a new one is started for what comes next
                if not again:
                    break
                continue
            if problem:
                log.warning("could not measure HFR: %s", problem)
            job.image = None
            return MeasureResult(job, hfr, stars, seconds, inline=False)
        job.image = None
        return MeasureResult(job, None, None, 0.0, inline=False, error=f"not measured: {why}"[:500])

    def _measure_here(self, job: MeasureJob) -> MeasureResult:
        started = time.monotonic()
        error = None
        try:
            data = job.image if job.image is not None else read_pixels(job.path)
            hfr, stars, problem = frame_hfr(data, self.cfg.analysis)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not raised into the reply
            hfr, stars, problem = None, None, None
            error = f"not measured: {type(exc).__name__}: {exc}"[:500]
            log.error("HFR of %s: %s", job.file, error)
        if problem:
            log.warning("could not measure HFR: %s", problem)
        data = job.image = None
        from ..analysis.memory import release_free_memory

        release_free_memory()
        return MeasureResult(job, hfr, stars, time.monotonic() - started, inline=True, error=error)

    def _deliver(self, result: MeasureResult) -> None:
        try:
            self.on_result(result)
        except Exception:  # noqa: BLE001 - reporting must not stop measuring
            log.exception("HFR worker: could not report the result for %s", result.job.file)


def worker_niceness(pid: int) -> int | None:
    """The niceness of a running process (tests and benchmarks read the worker's)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:
        return None
