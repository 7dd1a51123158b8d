"""Delivering a burst of replies through an SMTP relay: N replies waiting in the outbox (as after
a burst of requests) delivered by the bot's sender to an aiosmtpd relay in another process,
which can answer each command after a delay, as a relay across a network does.

    python bench/relay_bench.py [--replies 1000] [--connections 1,4] [--delay-ms 0,5] [--tls]

With --tls the relay requires STARTTLS, with a certificate from a throw-away authority (trustme,
one of the test dependencies) that the sender is made to trust, as a deployment's relay on
port 587 does.

The sender runs in this process as it does in `serve` (an asyncio task, the store's work in
its background thread): "sender CPU" is this process's CPU time per reply, the relay's not
counted. Each run starts from a new SQLite store.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import interpreter, scratch  # noqa: E402


def run_relay(port: int, delay: float, received, ready, tls=None) -> None:  # noqa: ANN001 - multiprocessing objects
    """The relay: accepts everything, counts it, and answers each command *delay* seconds late;
    with *tls* (a server SSLContext) it requires STARTTLS first."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class Late(SMTP):
        async def push(self, status: str) -> None:
            if delay:
                await asyncio.sleep(delay)
            await super().push(status)

    class Count:
        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
            with received.get_lock():
                received.value += 1
            return "250 OK"

    class LateController(Controller):
        def factory(self) -> SMTP:
            return Late(self.handler, hostname="relay.bench", tls_context=tls, require_starttls=tls is not None)

    controller = LateController(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def queue_replies(url: str, n: int) -> None:
    """n realistic replies (a rendered "submitted" reply, MIME and all), due now."""
    import logging

    from bot.config import Settings
    from bot.outbox import insert_outbox
    from bot.replies import OutgoingEmail, build_email, make_environment, render, sample_context
    from bot.setup import prepare_store
    from store.db import Store, utcnow

    logging.disable(logging.WARNING)
    settings = Settings(database_url=url, bot_address="biq@ssss.gouv.qc.ca")
    store = Store(url)
    prepare_store(store, settings)
    rendered = render(make_environment(), "submitted", "fr", bot_name=settings.bot_name, **sample_context("submitted"))
    now = utcnow()
    with store.session() as s:
        for i in range(n):
            to = f"requester{i % 50}@ssss.gouv.qc.ca"
            raw, _ = build_email(OutgoingEmail(to=to, subject=rendered.subject, text=rendered.text, html=rendered.html),
                                 from_addr=settings.bot_address, from_name=settings.bot_name,
                                 domain=settings.bot_domain, now=now)
            insert_outbox(s, dedupe_key=f"bench{i}", channel="email", kind="submitted", to_addr=to,
                          subject=rendered.subject, message=raw, next_attempt_at=now, created_at=now)
    store.dispose()


async def deliver_all(url: str, outbound: str, connections: int, n: int) -> tuple[int, float]:
    """(replies delivered, seconds) for the sender's passes until nothing is due."""
    from bot.config import Settings
    from bot.outbox import Sender
    from store.db import Store

    settings = Settings(database_url=url, bot_address="biq@ssss.gouv.qc.ca", outbound=outbound,
                        outbound_connections=connections)
    store = Store(url)
    sender = Sender(store, settings)
    delivered, t0 = 0, time.perf_counter()
    while delivered < n:
        got = await sender.deliver_due(50)
        if not got:
            break
        delivered += got
    seconds = time.perf_counter() - t0
    sender.thread.shutdown()
    store.dispose()
    return delivered, seconds


def trusted_server_context():  # noqa: ANN201 - ssl.SSLContext
    """A certificate for 127.0.0.1 from a throw-away authority that this process's TLS clients
    trust (SSL_CERT_FILE, read where the sender builds its context), and the relay's context."""
    import os
    import ssl

    try:
        import trustme
    except ImportError:
        raise SystemExit("--tls needs trustme (pip install -e '.[test]')") from None
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    pem = scratch("biq-relay-ca-") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    os.environ["SSL_CERT_FILE"] = str(pem)
    return server


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replies", type=int, default=1000)
    ap.add_argument("--connections", default="1,4", help="outbound_connections to try, e.g. 1,4,8")
    ap.add_argument("--delay-ms", default="0,5", help="the relay's delay before each answer, e.g. 0,5,20")
    ap.add_argument("--tls", action="store_true", help="the relay requires STARTTLS (needs trustme)")
    args = ap.parse_args()
    server_tls = trusted_server_context() if args.tls else None
    print(f"interpreter: {interpreter()}")
    print(f"relay: {'STARTTLS required' if args.tls else 'plain SMTP'}")
    print(f"{'delay ms':>8} {'conns':>5} {'replies':>7} {'replies/s':>9} {'sender CPU ms/reply':>19}")
    fork = multiprocessing.get_context("fork")
    for delay in (float(x) for x in args.delay_ms.split(",")):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        received, ready = fork.Value("i", 0), fork.Event()
        relay = fork.Process(target=run_relay, args=(port, delay / 1000, received, ready, server_tls), daemon=True)
        relay.start()
        ready.wait(30)
        try:
            for connections in (int(x) for x in args.connections.split(",")):
                url = f"sqlite:///{scratch('biq-relay-bench-') / 'biq.db'}"
                queue_replies(url, args.replies)
                before, cpu0 = received.value, time.process_time()
                outbound = f"smtp://127.0.0.1:{port}" + ("?starttls=true" if args.tls else "")
                delivered, seconds = asyncio.run(deliver_all(url, outbound, connections, args.replies))
                cpu = (time.process_time() - cpu0) * 1000 / max(delivered, 1)
                if delivered != args.replies or received.value - before != delivered:
                    raise SystemExit(f"{delivered} recorded as delivered, {received.value - before} received by the relay, "
                                     f"of {args.replies}")
                print(f"{delay:8.0f} {connections:5d} {delivered:7d} {delivered / seconds:9.0f} {cpu:19.2f}", flush=True)
        finally:
            relay.terminate()
            relay.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
