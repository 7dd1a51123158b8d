"""Pipeline workers: processes that parse and process stored messages, beside `serve`.

Parsing, rules and reply rendering are CPU work. In the SMTP server's process they would share
one core with it (one interpreter lock) and stall its event loop, so `serve` runs the pipeline
in `pipeline_workers` separate processes (`python -m bot.workers K N`) and keeps receiving,
sending and chatting for itself. The store is the only thing they share: a worker claims the
messages it processes in the same transaction that records their outcome, so two workers, or
two instances on one PostgreSQL, never process a message twice and a killed worker loses nothing.

The parent talks to each worker through its standard streams: the settings as one JSON line,
then one byte per "something was stored" (`w`) or "the directory changed" (`r`). The worker
answers one JSON line per processed batch (a list of [outcome, seconds since intake, inbound
id], for the parent's metrics and flow control and to wake the sender), and `{"taken": n}` when it takes n messages (negative when it
is done with them), for the parent's flow control. When the parent goes away the worker's standard input closes and it stops;
on Linux it is also killed with its parent (PR_SET_PDEATHSIG), so nothing runs on unwatched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from .background import name_os_thread
from .config import Settings
from .metrics import FAILURES

log = logging.getLogger("biq.workers")
RESTART_DELAY = 1.0


class WorkerPool:
    """Starts the workers, wakes them, restarts one that dies, stops them with the service."""

    def __init__(self, settings: Settings, count: int, on_report: Callable[[list[tuple[str, float, int]]], None],
                 on_taken: Callable[[int], None] = lambda n: None) -> None:
        self.settings = settings
        self.count = count
        self.on_report = on_report
        self.on_taken = on_taken
        self.procs: list[asyncio.subprocess.Process | None] = [None] * count
        self.tasks: list[asyncio.Task] = []
        self.stopping = False

    async def start(self, timeout: float = 60.0) -> None:
        """Start the workers and wait until each is ready (imports done, directory loaded), so
        that the first messages do not wait for them."""
        self.ready = [asyncio.Event() for _ in range(self.count)]
        self.tasks = [asyncio.create_task(self._keep(k), name=f"worker-{k}") for k in range(self.count)]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self.ready)), timeout)
            log.info("%d pipeline worker process(es) ready", self.count)
        except TimeoutError:
            log.warning("pipeline workers not ready after %.0f s; messages wait for them", timeout)

    def signal(self, byte: bytes = b"w") -> None:
        for proc in self.procs:
            if proc is not None and proc.stdin is not None and proc.returncode is None:
                with contextlib.suppress(Exception):  # a dying worker is restarted by _keep
                    proc.stdin.write(byte)

    async def _keep(self, k: int) -> None:
        settings_line = json.dumps(dataclasses.asdict(self.settings)).encode() + b"\n"
        while not self.stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.workers", str(k), str(self.count),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.procs[k] = proc
            proc.stdin.write(settings_line + b"w")
            while line := await proc.stdout.readline():
                self.ready[k].set()
                try:
                    report = json.loads(line)
                    if isinstance(report, dict):
                        taken = int(report["taken"])
                    else:
                        outcomes = [(str(state), float(seconds), int(i)) for state, seconds, i in report]
                except (ValueError, TypeError, KeyError):
                    log.warning("worker %d wrote something that is not a report", k)
                    continue
                try:
                    if isinstance(report, dict):
                        self.on_taken(taken)
                    else:
                        self.on_report(outcomes)
                except Exception:  # noqa: BLE001 - never stop reading a worker's reports
                    log.exception("handling a report of worker %d failed", k)
            code = await proc.wait()
            self.procs[k] = None
            if self.stopping:
                return
            FAILURES.labels("worker").inc()
            log.error("pipeline worker %d stopped (exit %s); restarting it in %.0f s", k, code, RESTART_DELAY)
            await asyncio.sleep(RESTART_DELAY)

    async def stop(self, timeout: float = 15.0) -> None:
        """Close their input: each finishes its current batch and exits (killed after *timeout*)."""
        self.stopping = True
        for proc in self.procs:
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("pipeline worker %d did not stop in %.0f s: killed", proc.pid, timeout)
                proc.kill()
                await proc.wait()
        for t in self.tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(t, 5)


def settle_memory() -> None:
    """Once start-up is done: what it built (modules, the directory, compiled statements and
    templates) lives as long as the process, so it is put out of the cyclic collector's sight.
    Full collections then stop scanning it; they had paused the SMTP server or a worker for
    40-100 ms in the middle of a burst (the top of the latency curve)."""
    gc.collect()
    gc.freeze()


def _die_with_parent() -> None:
    """Linux: be killed when the parent dies, even by SIGKILL (no orphan keeps processing)."""
    with contextlib.suppress(Exception):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait_for_work(timeout: float) -> bytes | None:
    """What the parent sent within *timeout* (b'' if nothing); None once it is gone."""
    ready, _, _ = select.select([sys.stdin.buffer], [], [], timeout)
    if not ready:
        return b""
    data = os.read(sys.stdin.buffer.fileno(), 4096)
    return data if data else None


def run_worker(k: int, n: int) -> int:
    from store.db import Store

    from .logs import quiet_libraries, setup_logging
    from .pipeline import Pipeline

    _die_with_parent()
    name_os_thread(f"biq-worker-{k}")
    settings = Settings(**json.loads(sys.stdin.buffer.readline()))
    setup_logging(verbose=False, fmt=settings.log_format)
    quiet_libraries()
    store = Store(settings.database_url, durable=False)  # see make_engine: serve's next commit syncs it
    pipeline = Pipeline(store, settings)
    out = sys.stdout

    def report(outcomes: list[tuple[str, float, int]]) -> None:
        out.write(json.dumps(outcomes) + "\n")
        out.flush()

    def taken(n: int) -> None:
        if n:
            out.write(f'{{"taken": {n:d}}}\n')
            out.flush()

    pipeline.on_processed = report
    pipeline.on_taken = taken
    pipeline._directory_now()  # load the directory and templates before saying "ready"
    pipeline.notifier.warm_up()
    settle_memory()
    report([])
    while True:
        try:
            handled = pipeline.process_pending(limit=200, batch=settings.pipeline_batch, shard=(k, n))
        except Exception:  # noqa: BLE001 - e.g. the store is down: wait and retry
            log.exception("pipeline pass failed; retrying shortly")
            handled = 0
            time.sleep(1.0)
        got = _wait_for_work(0 if handled else settings.poll_interval)
        if got is None:
            return 0
        if b"r" in got:
            pipeline.reload_directory()


if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1]), int(sys.argv[2])))
