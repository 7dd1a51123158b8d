"""Draining a backlog: N messages already waiting in the store (after a mail outage, or an IMAP
mailbox read at once) processed by one or more `biq-bot serve` instances sharing it. No SMTP
traffic: what is measured is the shared queue, claimed with row locks, and the processing.

    python bench/drain_bench.py [--messages 5000] [--instances 1,2] [--database-url URL]

The rate is taken between 20 % and 80 % of the backlog processed, when every instance is up
(each one starts, migrates nothing new, loads the directory and starts its worker in about a
second). "Total s" runs from the first instance's start until every reply is in the outbox.
Each run starts from an empty store: a new SQLite file, or a new database on the server of
--database-url (PostgreSQL: the store several instances share).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fresh_database, interpreter, scratch  # noqa: E402
from bench.smtp_bench import cpu_seconds, prepare, start_instances  # noqa: E402


def fill(url: str, n: int) -> None:
    """Store n realistic requests as the intake does, committed before any instance starts."""
    import logging

    from bot.config import Settings
    from bot.intake import Received, store_many
    from bot.setup import prepare_store
    from store.db import Store

    logging.disable(logging.WARNING)
    store = Store(url)
    prepare_store(store, Settings(database_url=url))
    raws = prepare(n, int(time.time()) % 100_000 * 1000)
    for start in range(0, n, 200):
        store_many(store, [Received(raw, sender, ["biq@ssss.gouv.qc.ca"]) for sender, _, raw in raws[start:start + 200]])
    store.dispose()


def drain(url: str, n: int, instances: int, tmp: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """(msg/s between 20 % and 80 % processed, seconds until every reply is queued, bot CPU ms/msg)."""
    from sqlalchemy import func, select

    from store.db import Store
    from store.models import InboundMessage, Outbox

    store = Store(url)
    t0 = time.perf_counter()
    procs, _ports = start_instances(url, instances, tmp, args)
    pids = [p.pid for p in procs]
    marks: dict[float, float] = {}
    try:
        while True:
            with store.session() as s:
                waiting = s.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.state == "new"))
                queued = s.scalar(select(func.count()).select_from(Outbox))
            now = time.perf_counter()
            for share in (0.2, 0.8):
                if share not in marks and n - waiting >= share * n:
                    marks[share] = now
            if not waiting and queued >= n:
                break
            if now - t0 > 600:
                raise SystemExit(f"not drained after 600 s: {waiting} waiting, {queued} replies")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        cpu = cpu_seconds(pids) * 1000 / n
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        store.dispose()
    middle = marks[0.8] - marks[0.2]
    rate = 0.6 * n / middle if middle > 0.5 else n / total  # a small run: too short to time its middle
    return rate, total, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--instances", default="1,2", help="e.g. 1,2: serve processes sharing the store")
    ap.add_argument("--workers", type=int, default=None, help="pipeline worker processes per instance")
    ap.add_argument("--database-url", default="",
                    help="default: a new SQLite file per run; a PostgreSQL URL: a new database per run on its server")
    args = ap.parse_args()
    args.batch = args.flow_limit = None  # start_instances' other settings: the defaults
    print(f"interpreter: {interpreter()}")
    print(f"{'inst':>4} {'messages':>8} {'msg/s':>8} {'total s':>8} {'bot CPU ms/msg':>14}")
    for instances in (int(x) for x in args.instances.split(",")):
        tmp = scratch("biq-drain-bench-")
        with fresh_database(args.database_url or f"sqlite:///{tmp / 'biq.db'}") as url:
            fill(url, args.messages)
            rate, total, cpu = drain(url, args.messages, instances, tmp, args)
        print(f"{instances:4d} {args.messages:8d} {rate:8.0f} {total:8.1f} {cpu:14.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
