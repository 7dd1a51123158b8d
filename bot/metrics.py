"""Prometheus metrics and a /healthz endpoint on localhost (optional: BIQ_HTTP_LISTEN).

Counters and a latency histogram in their own registry; a tiny asyncio HTTP server serves them,
so nothing else (no web framework) is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

log = logging.getLogger("biq.http")
REGISTRY = CollectorRegistry()
MESSAGES_IN = Counter("biq_messages_in_total", "Messages stored at intake", ["channel"], registry=REGISTRY)
PROCESSED = Counter("biq_messages_processed_total", "Messages processed, by outcome", ["outcome"], registry=REGISTRY)
REPLIES_OUT = Counter("biq_replies_out_total", "Replies and notifications delivered", ["channel"], registry=REGISTRY)
FAILURES = Counter("biq_failures_total", "Failures, by kind", ["kind"], registry=REGISTRY)
LATENCY = Histogram("biq_processing_seconds", "From intake to processed (reply queued)", registry=REGISTRY,
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


class HttpEndpoint:
    """GET /healthz (the store answers) and GET /metrics (Prometheus text format)."""

    def __init__(self, listen: str, healthy: Callable[[], bool]) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.healthy = healthy
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
            elif path == "/healthz":
                ok = await asyncio.to_thread(self.healthy)
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "text/plain; charset=utf-8", (b"ok\n" if ok else b"store unavailable\n")
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
