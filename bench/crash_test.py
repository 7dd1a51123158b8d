"""Crash safety: stream requests over SMTP from several clients while `biq-bot serve` is killed
with SIGKILL at random moments and restarted. Then check: every message that got 250 is stored
and processed exactly once (one request, one reply); nothing lost, nothing duplicated.

    python bench/crash_test.py [--messages 2000] [--clients 4] [--kills 5] [--database-url URL]

Clients retry after a 4xx or a dropped connection, like a real sending server. Prints a table
and exits 1 if anything was lost or duplicated.

A PostgreSQL --database-url gives the server: the run gets a new database on it, dropped
afterwards (as a SQLite run gets a new file).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fresh_database, scratch  # noqa: E402

TZ = ZoneInfo("America/Montreal")
SENDERS = ["sophie.tremblay.ccomtl@ssss.gouv.qc.ca", "marc.gagnon.ccomtl@ssss.gouv.qc.ca",
           "julie.roy.ccomtl@ssss.gouv.qc.ca", "nathalie.bouchard.cnmtl@ssss.gouv.qc.ca",
           "patrick.morin.cnmtl@ssss.gouv.qc.ca", "catherine.gagne.cemtl@ssss.gouv.qc.ca"]
FR_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(i: int) -> EmailMessage:
    d = datetime.now(TZ).date() + timedelta(days=5 + i % 300)
    m = EmailMessage()
    m["From"] = SENDERS[i % len(SENDERS)]
    m["To"] = "biq@ssss.gouv.qc.ca"
    m["Subject"] = f"Demande d'interprète {i}"
    m["Date"] = format_datetime(datetime.now(TZ))
    m["Message-ID"] = f"<crash-{i}@test.example>"
    m.set_content(f"Bonjour, j'aurais besoin d'un interprète en espagnol le {FR_DAYS[d.weekday()]} {d.day} "
                  f"{FR_MONTHS[d.month - 1]} {d.year} à {8 + i % 9}h, durée 1h, en présentiel au CLSC de "
                  f"Parc-Extension.\n\nMerci")
    return m


class Server:
    def __init__(self, env: dict) -> None:
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port = int(env["BIQ_SMTP_LISTEN"].rsplit(":", 1)[1])

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("biq-bot serve did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def counts_per_message(store) -> tuple[dict, dict, dict]:  # noqa: ANN001 - store.db.Store
    """By Message-ID: how many times stored, how many requests, how many replies sent.

    Exactly-once means 1, 1 and 1 for every accepted message."""
    from sqlalchemy import func, select

    from store.models import InboundMessage, Outbox, Request
    mid = InboundMessage.message_id
    with store.session() as s:
        stored = dict(s.execute(select(mid, func.count()).group_by(mid)).all())
        requests = dict(s.execute(select(mid, func.count(Request.id)).join(Request, Request.inbound_id == InboundMessage.id)
                                  .group_by(mid)).all())
        replies = dict(s.execute(select(mid, func.count(Outbox.id)).join(Outbox, Outbox.inbound_id == InboundMessage.id)
                                 .where(Outbox.state == "sent").group_by(mid)).all())
    return stored, requests, replies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    random.seed(args.seed)
    tmp = scratch("biq-crash-")
    with fresh_database(args.database_url or f"sqlite:///{tmp / 'biq.db'}") as url:
        return run(args, tmp, url)


def run(args: argparse.Namespace, tmp: Path, url: str) -> int:
    """Stream, kill and restart, then count; 0 when nothing was lost or duplicated."""
    env = dict(os.environ, BIQ_DATABASE_URL=url,
               BIQ_SMTP_LISTEN=f"127.0.0.1:{free_port()}", BIQ_OUTBOUND=f"dir:{tmp / 'out'}",
               BIQ_BOT_ADDRESS="biq@ssss.gouv.qc.ca", BIQ_REPLIES_PER_SENDER_PER_HOUR="1000000",
               BIQ_POLL_INTERVAL="0.05", BIQ_OUTBOUND_LEASE_SECONDS="5")
    server = Server(env)
    server.start()
    accepted: set[int] = set()
    attempts = {"4xx": 0, "dropped": 0}
    lock = threading.Lock()
    queue = list(range(args.messages))
    done = threading.Event()

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            raw = message(i).as_bytes()
            while True:
                try:
                    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as c:
                        c.sendmail(SENDERS[i % len(SENDERS)], ["biq@ssss.gouv.qc.ca"], raw)
                    with lock:
                        accepted.add(i)
                    break
                except smtplib.SMTPResponseException as exc:
                    with lock:
                        attempts["4xx" if 400 <= exc.smtp_code < 500 else "dropped"] += 1
                    if exc.smtp_code >= 500:
                        raise
                except (OSError, smtplib.SMTPException):
                    with lock:
                        attempts["dropped"] += 1
                time.sleep(0.05)

    def killer() -> None:
        for _ in range(args.kills):
            time.sleep(random.uniform(0.5, 2.5))
            if done.is_set():
                return
            server.kill()
            time.sleep(random.uniform(0.1, 0.5))
            server.start()

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    k = threading.Thread(target=killer)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    k.start()
    for t in threads:
        t.join()
    done.set()
    k.join()
    sent_s = time.monotonic() - t0
    # let the last instance finish the work, then count

    from bot.ops import wait_until_drained
    from store.db import Store
    store = Store(env["BIQ_DATABASE_URL"])
    wait_until_drained(store, timeout=300)
    server.stop()
    per_mid, requests, replies = counts_per_message(store)
    files = len(list((tmp / "out").glob("*.eml")))
    mids = {f"<crash-{i}@test.example>" for i in accepted}
    lost = sum(1 for m in mids if per_mid.get(m, 0) == 0 or requests.get(m, 0) == 0 or replies.get(m, 0) == 0)
    duplicated = sum(1 for m in mids if per_mid.get(m, 0) > 1 or requests.get(m, 0) > 1 or replies.get(m, 0) > 1)
    duplicated += max(0, files - len(mids))
    print(f"{'messages sent':28} {args.messages}")
    print(f"{'accepted with 250':28} {len(accepted)}")
    print(f"{'kills (SIGKILL)':28} {args.kills}")
    print(f"{'retries after 4xx':28} {attempts['4xx']}")
    print(f"{'retries after a drop':28} {attempts['dropped']}")
    print(f"{'reply files written':28} {files}")
    print(f"{'lost':28} {lost}")
    print(f"{'duplicated':28} {duplicated}")
    print(f"{'seconds':28} {sent_s:.1f}")
    store.dispose()
    return 0 if lost == 0 and duplicated == 0 and len(accepted) == args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
