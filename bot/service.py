"""`biq-bot serve`: the SMTP server, the outbox sender and the chat, with the pipeline beside them.

Receiving, sending and chatting are loops on one asyncio event loop; database work runs in
threads so that the SMTP server keeps answering. The pipeline (parsing, rules, replies: CPU
work) runs in worker processes (`bot.workers`), or, with `pipeline_workers = 0`, in a thread of
this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Coroutine

from store.db import Store
from store.pg_notify import listen_processed

from .background import background_executor
from .config import Settings
from .logs import quiet_libraries
from .outbox import Sender
from .pipeline import Pipeline, count_processed
from .setup import prepare_store, processed_among, waiting_count
from .smtp_server import InFlow, IntakeHandler, make_smtp_server
from .workers import WorkerPool, settle_memory

log = logging.getLogger("biq.service")


class Service:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.pipeline = Pipeline(self.store, settings)
        self.sender = Sender(self.store, settings)
        self.stop_event = asyncio.Event()
        self.work = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        quiet_libraries()
        await asyncio.to_thread(prepare_store, self.store, self.settings)
        loop = asyncio.get_running_loop()
        self.flow = InFlow(self.settings.smtp_flow_limit, self.settings.smtp_flow_max_delay,
                           recount=lambda: asyncio.to_thread(waiting_count, self.store),
                           done_among=lambda ids: asyncio.to_thread(processed_among, self.store, ids))
        self.flow.stored(await asyncio.to_thread(waiting_count, self.store))
        self.workers = None
        if self.settings.pipeline_workers > 0:
            self.workers = WorkerPool(self.settings, self.settings.pipeline_workers, self._processed, self.flow.taken)
            await self.workers.start()
        self.pipeline.on_processed = lambda outcomes: loop.call_soon_threadsafe(self._processed, outcomes)
        self.pipeline.on_taken = lambda n: loop.call_soon_threadsafe(self.flow.taken, n)
        handler = IntakeHandler(self.store, self.settings, on_stored=self._stored, flow=self.flow)
        self.handler = handler
        host, port = self.settings.listen_host_port
        self.server = await loop.create_server(make_smtp_server(handler, self.settings), host=host, port=port)
        bound = self.server.sockets[0].getsockname()
        self.port = bound[1]
        log.info("listening for SMTP on %s:%d for %s", bound[0], bound[1], ", ".join(sorted(self.settings.own_addresses)))
        log.info("replies go to %s; store %s", self.settings.outbound, self.store.engine.url.render_as_string(hide_password=True))
        self.telegram = None
        if self.settings.telegram_token:
            from .telegram_bot import TelegramChannel
            self.telegram = TelegramChannel(self.settings, self.store, self.pipeline,
                                            on_stored=lambda: loop.call_soon_threadsafe(self._stored))
            await self.telegram.start()
            self.sender.telegram = self.telegram.bot
        self.imap = None
        if self.settings.imap_url:
            from .imap_reader import ImapReader
            self.imap = ImapReader(self.store, self.settings, on_stored=lambda: loop.call_soon_threadsafe(self._stored))
            self.imap_stop = threading.Event()
            self.imap_thread = threading.Thread(target=self.imap.run, args=(self.imap_stop,), name="imap", daemon=True)
            self.imap_thread.start()
            log.info("reading IMAP mailbox %s:%d/%s", self.imap.target.host, self.imap.target.port, self.imap.target.folder)
        self.http = None
        if self.settings.http_listen:
            from .metrics import HttpEndpoint
            self.http = HttpEndpoint(self.settings.http_listen, self._healthy)
            await self.http.start()
        self.listener = None
        if self.store.is_postgres:  # other instances' workers name the messages they processed
            conninfo = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.listener = asyncio.create_task(listen_processed(conninfo, self.flow.processed), name="processed")
        self.tasks = [asyncio.create_task(self._reminder_loop(), name="reminders"),
                      asyncio.create_task(self._checkpoint_loop(), name="checkpoint"),
                      asyncio.create_task(self.sender.run(self.stop_event), name="sender")]
        if self.workers is None:
            self.tasks.append(asyncio.create_task(self._work_loop(), name="pipeline"))

    def _stored(self) -> None:
        """Something was stored: wake whoever processes it."""
        if self.workers is not None:
            self.workers.signal()
        else:
            self.work.set()

    def _processed(self, outcomes: list[tuple[str, float, int]]) -> None:
        """The pipeline processed a batch: count it, let the senders held for these messages go
        on and let the sender deliver the replies."""
        count_processed(outcomes)
        self.flow.processed([inbound_id for _, _, inbound_id in outcomes])
        self.sender.wake.set()

    async def _work_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                n = await asyncio.to_thread(self.pipeline.process_pending, 50)
            except Exception:  # noqa: BLE001 - e.g. the store is down: wait and retry
                log.exception("pipeline pass failed; retrying shortly")
                n = 0
            if n:
                self.sender.wake.set()
                continue
            self.work.clear()
            try:
                await asyncio.wait_for(self.work.wait(), timeout=self.settings.poll_interval)
            except TimeoutError:
                pass

    def _healthy(self) -> bool:
        try:
            with self.store.engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - unhealthy is the answer
            return False

    async def _reminder_loop(self) -> None:
        from .reminders import send_due_reminders
        while not self.stop_event.is_set():
            try:
                if await asyncio.to_thread(send_due_reminders, self.store, self.pipeline):
                    self.sender.wake.set()
            except Exception:  # noqa: BLE001 - retried at the next tick
                log.exception("reminders pass failed")
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=300)
            except TimeoutError:
                pass

    async def _checkpoint_loop(self, every: float = 1.0) -> None:
        """SQLite: checkpoint the write-ahead log in the background (see store.db)."""
        thread = background_executor("biq-checkpoint")
        loop = asyncio.get_running_loop()
        while not self.stop_event.is_set() and not self.store.is_postgres:
            try:
                await loop.run_in_executor(thread, self.store.checkpoint)
            except Exception:  # noqa: BLE001 - e.g. the file is busy: next second
                log.warning("checkpoint of the store failed; retrying", exc_info=True)
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=every)
            except TimeoutError:
                pass
        thread.shutdown(wait=False)

    async def stop(self) -> None:
        if getattr(self, "http", None) is not None:
            await self.http.stop()
        if getattr(self, "imap", None) is not None:
            self.imap_stop.set()
            await asyncio.to_thread(self.imap_thread.join, 15)
        if getattr(self, "telegram", None) is not None:
            await self.telegram.stop()
        self.stop_event.set()
        self.work.set()
        self.sender.wake.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if getattr(self, "handler", None) is not None:
            await asyncio.to_thread(self.handler.writer.close)
        if getattr(self, "workers", None) is not None:
            await self.workers.stop()
        if getattr(self, "listener", None) is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener
        for t in self.tasks:
            try:
                await asyncio.wait_for(t, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                t.cancel()
        self.sender.thread.shutdown(wait=True)  # a pass of files in progress is finished and recorded

    async def run_forever(self) -> None:
        await self.start()
        settle_memory()
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, done.set)
            except (NotImplementedError, RuntimeError):
                pass
        await done.wait()
        log.info("stopping")
        await self.stop()


def run(main: Coroutine[object, object, None], event_loop: str = "uvloop") -> None:
    """Run *main* to the end on uvloop when it is installed and chosen, else on asyncio's own loop.

    uvloop's sockets and callbacks are written in C: on a burst of SMTP sessions the event loop
    spent about a sixth less CPU per message (measured with bench/smtp_bench.py)."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: running on asyncio's own event loop")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
