"""Memory: RSS of `biq-bot serve` (and, apart, of its pipeline workers) idle, then after N
messages sent over SMTP and processed.

    python bench/memory_bench.py [--messages 10000] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import interpreter, scratch  # noqa: E402
from bench.smtp_bench import blast, free_port, prepare  # noqa: E402


def workers_rss_mb(pid: int) -> float:
    """The pipeline worker processes `serve` started (its children), together."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(rss_mb(int(c)) for c in children if Path(f"/proc/{c}").exists())


def pss_mb(pid: int) -> float:
    """Proportional set size of `serve` and its workers: shared pages counted once in all."""
    pids = [pid, *(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0.0
    for p in pids:
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) / 1024
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    from sqlalchemy import func, select

    from store.db import Store
    from store.models import InboundMessage
    tmp = scratch("biq-mem-")
    url = f"sqlite:///{tmp / 'biq.db'}"
    port = free_port()
    env = dict(os.environ, BIQ_DATABASE_URL=url, BIQ_SMTP_LISTEN=f"127.0.0.1:{port}", BIQ_OUTBOUND=f"dir:{tmp / 'out'}",
               BIQ_BOT_ADDRESS="biq@ssss.gouv.qc.ca", BIQ_REPLIES_PER_SENDER_PER_HOUR="100000000")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)
        idle, idle_workers = rss_mb(proc.pid), workers_rss_mb(proc.pid)
        blast([port], prepare(args.messages, 50_000_000), args.clients)
        store = Store(url)
        while True:
            with store.session() as s:
                if not s.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.state == "new")):
                    break
            time.sleep(0.5)
        time.sleep(2)
        after, after_workers, after_pss = rss_mb(proc.pid), workers_rss_mb(proc.pid), pss_mb(proc.pid)
        store.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"interpreter: {interpreter()}")
    print(f"{'RSS idle':28} {idle:8.1f} MB")
    print(f"{'RSS after ' + str(args.messages) + ' messages':28} {after:8.1f} MB")
    print(f"{'workers RSS idle':28} {idle_workers:8.1f} MB")
    print(f"{'workers RSS after':28} {after_workers:8.1f} MB")
    print(f"{'serve + workers PSS after':28} {after_pss:8.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
