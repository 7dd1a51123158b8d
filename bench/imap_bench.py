"""IMAP ingestion throughput: N messages waiting in a real Dovecot, taken by the reader.

    python bench/imap_bench.py [--messages 1000] [--database-url URL]

Needs Dovecot installed (scripts/test.sh installs it). Prints a table: messages taken per second
by the reader alone (store + move), then with the pipeline processing them to replies.

A PostgreSQL --database-url gives the server: the run gets a new database on it, dropped
afterwards (as a SQLite run gets a new file).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fresh_database, scratch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        print("dovecot is not installed: run scripts/test.sh once, or apt-get install dovecot-imapd")
        return 1
    tmp = scratch("biq-imap-bench-")
    with fresh_database(args.database_url or f"sqlite:///{tmp / 'biq.db'}") as url:
        return run(args, binary, tmp, url)


def run(args: argparse.Namespace, binary: str, tmp: Path, url: str) -> int:
    from bot.imap_reader import ImapReader
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    from store.db import Store
    from tests.conftest import make_settings
    from tests.dovecot import Dovecot
    from tests.test_email_loop import complete_request, in_days, make_mail

    dovecot = Dovecot(binary).start()
    try:
        import logging
        logging.disable(logging.WARNING)
        settings = make_settings(url, f"dir:{tmp / 'out'}", imap_url=dovecot.url, imap_password=dovecot.password,
                                 replies_per_sender_per_hour=1_000_000)
        store = Store(url)
        prepare_store(store, settings)
        client = dovecot.client()
        from store.directory_sync import directory_from_store
        with store.session() as s:
            senders = [r for r in directory_from_store(s).requesters if r.endswith("@ssss.gouv.qc.ca")]
        msgs = [make_mail(complete_request(in_days(10 + i % 200)), sender=senders[i % len(senders)]).as_bytes()
                for i in range(args.messages)]
        for i in range(0, len(msgs), 100):
            client.multiappend("INBOX", msgs[i:i + 100])
        client.logout()
        reader = ImapReader(store, settings)
        t0 = time.perf_counter()
        taken = reader.drain()
        t_read = time.perf_counter() - t0
        reader.close()
        t0 = time.perf_counter()
        pipeline = Pipeline(store, settings)
        while pipeline.process_pending(500):
            pass
        t_pipe = time.perf_counter() - t0
        print(f"{'stage':34} {'messages':>8} {'seconds':>8} {'msg/s':>8}")
        print(f"{'IMAP reader (store + move)':34} {taken:8d} {t_read:8.2f} {taken / t_read:8.0f}")
        print(f"{'pipeline (parse, rules, replies)':34} {taken:8d} {t_pipe:8.2f} {taken / t_pipe:8.0f}")
        print(f"store: {store.engine.dialect.name}")
        store.dispose()
    finally:
        dovecot.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
