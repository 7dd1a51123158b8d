"""SMTP end to end: K concurrent clients send N realistic requests through a real socket into
`biq-bot serve`; messages/second until every reply is committed to the outbox, and p50/p99
latency from DATA to reply committed, and the CPU time the bot (serve and its workers) spent per
message. The same clients against a bare aiosmtpd server that only
answers 250 give the reference rate, and the ratio. "sent +s": how long after the last reply was
committed the sender (which works at background priority) had delivered them all.

    python bench/smtp_bench.py [--messages 2000] [--clients 1,8,32] [--database-url URL]
                               [--instances 1,2] [--workers N] [--batch N] [--flow-limit N] [--relay]
                               [--threads]

With --instances 2 (on PostgreSQL) two `biq-bot serve` share the store and the clients are
spread over their two SMTP ports: the rate shows what the second instance adds. Every run starts
from an empty store: a new SQLite file, or a new database on the server of --database-url.
With --relay the replies leave through an SMTP relay (an aiosmtpd server in another process on
this machine) instead of being written to a folder. With --threads each run also prints the
bot's CPU time per message by thread (event loop, intake, sender, workers, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fresh_database, interpreter, scratch  # noqa: E402
from bench.crash_test import SENDERS, message  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(n: int, offset: int) -> list[tuple[str, str, bytes]]:
    """n request emails as (envelope sender, Message-ID, bytes), serialised before any clock
    starts, as a sending server holds them: generating 2,000 takes ≈ 3 s, which is not the bot's."""
    raws = [(SENDERS[(offset + i) % len(SENDERS)], m["Message-ID"], m.as_bytes())
            for i, m in ((i, message(offset + i)) for i in range(n))]
    gc.freeze()  # the prepared messages: a full collection paused the clients for 100-250 ms
    return raws


def blast(ports: list[int], raws: list[tuple[str, str, bytes]], k: int) -> tuple[float, dict[str, float]]:
    """Send the prepared messages over k persistent connections (spread over *ports*); returns
    (seconds, {message-id: DATA time})."""
    data_at: dict[str, float] = {}
    lock = threading.Lock()
    chunks = [raws[j::k] for j in range(k)]

    def client(port: int, chunk) -> None:  # noqa: ANN001
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
            for sender, mid, raw in chunk:
                t = time.time()
                c.sendmail(sender, ["biq@ssss.gouv.qc.ca"], raw)
                with lock:
                    data_at[mid] = t

    threads = [threading.Thread(target=client, args=(ports[j % len(ports)], c)) for j, c in enumerate(chunks) if c]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, data_at


def process_tree(pids: list[int]) -> Iterator[int]:
    """These processes and, as long as they run, their children and theirs (Linux /proc)."""
    seen, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        yield pid
        with contextlib.suppress(OSError, ValueError):
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes and their children (Linux)."""
    total = 0.0
    for pid in process_tree(pids):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU time so far of each named thread of these processes and their children, in seconds,
    summed by name (Linux: /proc/PID/task/TID/schedstat, in nanoseconds). `serve` names its
    threads (biq-intake, biq-sender, ...); its event loop is the process's main thread, "python"."""
    times: dict[str, float] = {}
    for pid in process_tree(pids):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                name = (task / "comm").read_text().strip()
                name = "event loop" if task.name == str(pid) and name.startswith("python") else name
                times[name] = times.get(name, 0.0) + int((task / "schedstat").read_text().split()[0]) / 1e9
    return times


def bare_rate(n: int, k: int) -> float:
    from aiosmtpd.controller import Controller

    class Ok:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            return "250 OK"

    port = free_port()
    try:  # the event loop `serve` runs on (bot.service.run), so the two servers compare fairly
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        import asyncio
        loop = asyncio.new_event_loop()
    ctl = Controller(Ok(), hostname="127.0.0.1", port=port, loop=loop)
    ctl.start()
    try:
        secs, _ = blast([port], prepare(n, 10_000_000), k)
    finally:
        ctl.stop()
    return n / secs


def start_instances(url: str, count: int, tmp: Path, args: argparse.Namespace) -> tuple[list, list[int]]:
    ports = [free_port() for _ in range(count)]
    procs = []
    for port in ports:
        env = dict(os.environ, BIQ_DATABASE_URL=url, BIQ_SMTP_LISTEN=f"127.0.0.1:{port}",
                   BIQ_OUTBOUND=getattr(args, "outbound", None) or f"dir:{tmp / 'out'}", BIQ_BOT_ADDRESS="biq@ssss.gouv.qc.ca",
                   BIQ_REPLIES_PER_SENDER_PER_HOUR="100000000", BIQ_POLL_INTERVAL="0.02")
        for name in ("workers", "batch"):
            if getattr(args, name) is not None:
                env[f"BIQ_PIPELINE_{name.upper()}"] = str(getattr(args, name))
        if args.flow_limit is not None:
            env["BIQ_SMTP_FLOW_LIMIT"] = str(args.flow_limit)
        procs.append(subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(300):  # one at a time: the first one migrates the schema
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    return procs, ports


def run(url: str, instances: int, k: int, tmp: Path, args: argparse.Namespace,
        offset: int) -> tuple[float, list[float], float, float]:
    """One run: (seconds until every reply is committed, latencies in ms, bot CPU ms per message,
    seconds more until the sender had delivered them all)."""
    from sqlalchemy import func, select

    from store.db import Store
    from store.models import InboundMessage, Outbox

    procs, ports = start_instances(url, instances, tmp, args)
    try:
        store = Store(url)
        with store.session() as s:  # polled below by id: counting a whole table is the bench's cost
            first = (s.scalar(select(func.max(Outbox.id))) or 0) + 1
        raws = prepare(args.messages, offset)
        pids = [p.pid for p in procs]
        cpu0 = cpu_seconds(pids)
        threads0 = thread_cpu(pids)
        t0 = time.perf_counter()
        _, data_at = blast(ports, raws, k)
        while True:
            with store.session() as s:
                waiting = s.scalar(select(func.count()).select_from(InboundMessage)
                                   .where(InboundMessage.state == "new"))
                queued = s.scalar(select(func.count()).select_from(Outbox).where(Outbox.id >= first))
            if not waiting and queued >= args.messages:
                break
            time.sleep(0.02)
        total = time.perf_counter() - t0
        cpu = (cpu_seconds(pids) - cpu0) * 1000 / args.messages
        threads = thread_cpu(pids)
        per_thread = {name: (secs - threads0.get(name, 0.0)) * 1000 / args.messages
                      for name, secs in threads.items()}
        while True:  # the sender works at background priority: how far behind is it?
            with store.session() as s:
                unsent = s.scalar(select(func.count()).select_from(Outbox)
                                  .where(Outbox.id >= first, Outbox.state != "sent"))
            if not unsent:
                break
            if time.perf_counter() - t0 > total + 120:
                raise SystemExit(f"{unsent} replies still not delivered 120 s after the last one was queued")
            time.sleep(0.02)
        lag = time.perf_counter() - t0 - total
        with store.session() as s:
            rows = s.execute(select(InboundMessage.message_id, func.min(Outbox.created_at))
                             .join(Outbox, Outbox.inbound_id == InboundMessage.id)
                             .where(InboundMessage.message_id.in_(list(data_at)))
                             .group_by(InboundMessage.message_id)).all()
        lat = sorted((c.timestamp() - data_at[m]) * 1000 for m, c in rows if isinstance(c, datetime))
        store.dispose()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    if args.threads:
        print("      CPU ms/msg by thread: " + ", ".join(
            f"{name} {ms:.2f}" for name, ms in sorted(per_thread.items(), key=lambda kv: -kv[1]) if ms >= 0.01))
    return total, lat, cpu, lag


def start_relay() -> str:
    """An SMTP relay that accepts every reply (bench/relay_bench.py's), in its own process; its URL."""
    import multiprocessing

    from bench.relay_bench import run_relay

    port = free_port()
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    fork.Process(target=run_relay, args=(port, 0.0, fork.Value("i", 0), ready), daemon=True).start()
    ready.wait(30)
    return f"smtp://127.0.0.1:{port}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--instances", default="1", help="e.g. 1,2: serve processes sharing the store (PostgreSQL)")
    ap.add_argument("--workers", type=int, default=None, help="pipeline worker processes per instance")
    ap.add_argument("--batch", type=int, default=None, help="messages per pipeline transaction")
    ap.add_argument("--flow-limit", type=int, default=None, help="waiting messages before 250 is held back")
    ap.add_argument("--database-url", default="",
                    help="default: a new SQLite file per run; a PostgreSQL URL: a new database per run on its server")
    ap.add_argument("--relay", action="store_true",
                    help="replies go to an aiosmtpd relay (another process) instead of a folder")
    ap.add_argument("--threads", action="store_true",
                    help="also print the bot's CPU time per message by thread, where the time goes")
    args = ap.parse_args()
    args.outbound = start_relay() if args.relay else None
    print(f"interpreter: {interpreter()}")
    print(f"{'inst':>4} {'K':>3} {'messages':>8} {'bot msg/s':>10} {'bare msg/s':>11} {'ratio':>6} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'bot CPU ms/msg':>14} {'sent +s':>7}")
    offset = int(time.time()) % 100_000 * 1000  # fresh Message-IDs even in a reused database
    for instances in (int(x) for x in args.instances.split(",")):
        for k in (int(x) for x in args.clients.split(",")):
            tmp = scratch("biq-smtp-bench-")
            with fresh_database(args.database_url or f"sqlite:///{tmp / 'biq.db'}") as url:
                total, lat, cpu, lag = run(url, instances, k, tmp, args, offset)
            bare = bare_rate(args.messages, k)
            rate = args.messages / total
            p50 = statistics.median(lat) if lat else float("nan")
            p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
            print(f"{instances:4d} {k:3d} {args.messages:8d} {rate:10.0f} {bare:11.0f} {rate / bare:6.2f} "
                  f"{p50:8.1f} {p99:8.1f} {cpu:14.1f} {lag:7.2f}", flush=True)
            offset += args.messages
    return 0


if __name__ == "__main__":
    sys.exit(main())
