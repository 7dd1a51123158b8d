"""PostgreSQL only: tell every instance which messages were processed (LISTEN / NOTIFY).

With several instances on one database, any instance's worker may process a message another
instance received, and that instance holds the sender's `250` until the message is processed
(flow control). The worker's transaction sends the ids with `pg_notify`, which PostgreSQL
delivers to every listener when, and only if, the transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import Connection, text

log = logging.getLogger("biq.store")
CHANNEL = "biq_processed"
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :ids)")
PAYLOAD_MAX = 7000  # PostgreSQL refuses payloads of 8,000 bytes or more


def notify_processed(conn: Connection, ids: list[int]) -> None:
    """Within the caller's transaction: these messages are processed (sent at commit)."""
    chunk: list[str] = []
    for i in ids:
        chunk.append(str(int(i)))
        if sum(len(c) + 1 for c in chunk) > PAYLOAD_MAX:
            conn.execute(_NOTIFY, {"ids": ",".join(chunk)})
            chunk = []
    if chunk:
        conn.execute(_NOTIFY, {"ids": ",".join(chunk)})


async def listen_processed(conninfo: str, on_ids: Callable[[list[int]], None], retry_after: float = 1.0) -> None:
    """Call *on_ids* with the ids every instance's workers report, until cancelled; a lost
    connection is opened again (meanwhile flow control falls back on asking the store)."""
    import psycopg

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                async for note in conn.notifies():
                    try:
                        on_ids([int(x) for x in note.payload.split(",") if x])
                    except ValueError:
                        log.warning("ignored a malformed %s notification", CHANNEL)
        except Exception as exc:  # noqa: BLE001 - the database went away: try again shortly
            log.warning("listening for processed messages failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(retry_after)
