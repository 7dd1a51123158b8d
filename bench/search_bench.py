"""Search latency over a large generated store: the staff search (date range, language,
installation, status) and "my requests" (a requester's upcoming requests and those of their
installations), p50/p95 over repeated queries, with the plan the database chose.

    python bench/search_bench.py [--requests 1000000] [--database-url URL] [--explain]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import interpreter, scratch  # noqa: E402


def fill(store, n: int) -> None:  # noqa: ANN001
    from sqlalchemy import insert, select

    from store.models import Installation, Language, Request, Requester
    rnd = random.Random(1)
    with store.session() as s:
        req_ids = list(s.scalars(select(Requester.id)))
        sites = list(s.scalars(select(Installation.id)))
        langs = list(s.scalars(select(Language.code)))
    start = date.today() - timedelta(days=4 * 365)
    now = datetime.now(UTC)
    statuses = ["submitted", "offered", "confirmed", "completed", "completed", "completed", "cancelled", "unfilled"]
    batch = []
    for _ in range(n):
        d = start + timedelta(days=rnd.randrange(5 * 365))
        batch.append(dict(requester_id=rnd.choice(req_ids), status=rnd.choice(statuses), channel="email",
                          language="fr", location_id=rnd.choice(sites), mode="in_person", source_language="fr",
                          target_language=rnd.choice(langs), date=d, start_time=dtime(8 + rnd.randrange(9), 0),
                          duration_minutes=60, late_cancellation=False, problems="[]", created_at=now, updated_at=now))
        if len(batch) == 20_000:
            with store.session() as s:
                s.execute(insert(Request), batch)
            batch = []
    if batch:
        with store.session() as s:
            s.execute(insert(Request), batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--explain", action="store_true")
    args = ap.parse_args()
    import logging
    logging.disable(logging.WARNING)
    from sqlalchemy import func, select, text

    from bot.chat_commands import ChatCommands
    from bot.config import Settings
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    from store.db import Store
    from store.models import Request, Requester

    tmp = scratch("biq-search-")
    url = args.database_url or f"sqlite:///{tmp / 'biq.db'}"
    store = Store(url)
    settings = Settings(database_url=url)
    prepare_store(store, settings)
    with store.session() as s:
        have = s.scalar(select(func.count()).select_from(Request))
    t0 = time.perf_counter()
    if have < args.requests:
        fill(store, args.requests - have)
    with store.engine.begin() as c:  # the planner's statistics for the filled tables, on either store
        c.execute(text("ANALYZE"))
    fill_s = time.perf_counter() - t0
    pipeline = Pipeline(store, settings)
    commands = ChatCommands(store, pipeline)
    rnd = random.Random(2)
    with store.session() as s:
        requesters = list(s.scalars(select(Requester).where(Requester.role == "requester")))
    sites = ["clsc-parc-extension", "hopital-general-juif", "chum", "clsc-verdun"]

    def staff_search() -> None:
        d = date.today() + timedelta(days=rnd.randrange(-300, 300))
        with store.session() as s:
            commands.search(s, f"date:{d}..{d + timedelta(days=6)} lang:{rnd.choice(['es', 'ar', 'fa'])} "
                               f"site:{rnd.choice(sites)} status:completed")

    def my_requests() -> None:
        with store.session() as s:
            r = s.get(Requester, rnd.choice(requesters).id)
            pipeline.upcoming(s, r)

    print(f"interpreter: {interpreter()}")
    print(f"store: {store.engine.dialect.name}, {args.requests} requests (generated in {fill_s:.0f} s)")
    print(f"{'query':14} {'p50 ms':>8} {'p95 ms':>8}")
    for name, fn in (("staff search", staff_search), ("my requests", my_requests)):
        for _ in range(10):
            fn()
        times = []
        for _ in range(args.queries):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{name:14} {statistics.median(times):8.2f} {times[int(0.95 * (len(times) - 1))]:8.2f}")
    if args.explain:
        from bot.upcoming import upcoming_query
        d = date.today()
        staff = select(Request.id).where(Request.date >= d, Request.date <= d + timedelta(days=6),
                                         Request.target_language == "es", Request.location_id == "chum",
                                         Request.status == "completed")
        mine = upcoming_query(1).params(today=d, n=50, requester=requesters[0].id, site0="chum")
        prefix = "EXPLAIN QUERY PLAN " if not store.is_postgres else "EXPLAIN "
        with store.session() as s:
            for name, q in (("staff search", staff), ("my requests", mine)):
                compiled = q.compile(store.engine, compile_kwargs={"literal_binds": True})
                print(f"{name} plan:")
                for row in s.execute(text(prefix + str(compiled))):
                    print("   ", " ".join(str(v) for v in row))
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
