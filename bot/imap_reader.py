"""IMAP intake (imapclient): the bank's existing mailbox as a channel.

Each message is stored first (the same durable intake as SMTP), then marked processed by moving
it to a folder (default `BIQ/Traités`; imapclient encodes non-ASCII names in modified UTF-7).
A crash between the two leaves the message in the inbox: the next pass stores it again, the store
recognises it (Message-ID and content hash) and only the move is redone, so there is no duplicate
request and no duplicate reply. Messages that cannot be taken (too big, unreadable) go to
`BIQ/Erreurs` and are recorded for staff. IDLE is used when the server offers it, polling
otherwise; a dropped connection is retried with backoff, and the log says so.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import SQLAlchemyError

from store.db import Store, utcnow
from store.models import InboundMessage

from .config import ConfigError, Settings
from .intake import content_hash, store_inbound

log = logging.getLogger("biq.imap")
BATCH = 50


@dataclass
class ImapTarget:
    host: str
    port: int
    tls: bool
    user: str
    password: str
    folder: str


def parse_imap_url(url: str, password: str) -> ImapTarget:
    u = urlparse(url)
    if u.scheme not in ("imap", "imaps") or not u.hostname or not u.username:
        raise ConfigError(f"BIQ_IMAP_URL must look like imaps://user@host:port/INBOX, not {url!r}")
    folder = unquote(u.path.lstrip("/")) or "INBOX"
    return ImapTarget(u.hostname, u.port or (993 if u.scheme == "imaps" else 143), u.scheme == "imaps",
                      unquote(u.username), password or unquote(u.password or ""), folder)


class ImapReader:
    """Runs in its own thread: `run(stop)` until *stop* is set."""

    def __init__(self, store: Store, settings: Settings, on_stored: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.settings = settings
        self.target = parse_imap_url(settings.imap_url, settings.imap_password)
        self.on_stored = on_stored
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None
        self.reconnects = 0
        self.stored = 0
        self._recount_skipped = False

    # ---- connection ---------------------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        t = self.target
        context = ssl.create_default_context() if t.tls else None
        client = IMAPClient(t.host, port=t.port, ssl=t.tls, ssl_context=context, timeout=30)
        client.login(t.user, t.password)
        for folder in (self.settings.imap_processed_folder, self.settings.imap_error_folder):
            if folder and not client.folder_exists(folder):
                client.create_folder(folder)
                log.info("IMAP folder %s created", folder)
        self.client = client
        self._select()
        return client

    def _select(self) -> int:
        """(Re)select the folder; returns how many messages it holds now (its EXISTS)."""
        assert self.client is not None
        info = self.client.select_folder(self.target.folder)
        validity = info.get(b"UIDVALIDITY")
        if self.uidvalidity is not None and validity != self.uidvalidity:
            log.warning("IMAP UIDVALIDITY of %s changed (%s → %s): every message is looked at again; the store "
                        "recognises those already taken", self.target.folder, self.uidvalidity, validity)
        self.uidvalidity = validity
        return int(info.get(b"EXISTS", 0))

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.logout()
            except (IMAPClientError, OSError):
                pass
            self.client = None

    # ---- one pass over the inbox --------------------------------------------------------------------
    def drain(self) -> int:
        """Store and move every message waiting in the folder; returns how many were taken."""
        client = self.client or self.connect()
        taken = 0
        while True:  # until the folder is empty: what arrives during a pass is taken by the next one
            uids = client.search("ALL")
            if not uids:
                return taken
            before = taken
            for start in range(0, len(uids), BATCH):
                batch = uids[start:start + BATCH]
                sizes = client.fetch(batch, ["RFC822.SIZE"])
                small = [u for u in batch if sizes.get(u, {}).get(b"RFC822.SIZE", 0) <= self.settings.max_message_bytes]
                too_big = [u for u in batch if u not in small and u in sizes]
                for uid in too_big:
                    self._reject(uid, sizes[uid].get(b"RFC822.SIZE", 0))
                if not small:
                    continue
                bodies = client.fetch(small, ["BODY.PEEK[]"])
                done: list[int] = []
                for uid in small:
                    raw = bodies.get(uid, {}).get(b"BODY[]")
                    if raw is None:
                        self._move([uid], self.settings.imap_error_folder)
                        self._record_error(b"", f"IMAP message {uid} had no body: moved to {self.settings.imap_error_folder}")
                        continue
                    _id, duplicate = store_inbound(self.store, raw, mail_from="", rcpt_to=[self.target.user],
                                                   channel="imap")
                    if not duplicate:
                        self.stored += 1
                        self.on_stored()
                    done.append(uid)
                self._mark_processed(done)
                taken += len(done)
            if taken == before:  # nothing could be taken (only rejected ones): wait for the next pass
                return taken

    def _mark_processed(self, uids: list[int]) -> None:
        if uids:
            self._move(uids, self.settings.imap_processed_folder)

    def _move(self, uids: list[int], folder: str) -> None:
        client = self.client
        assert client is not None
        if b"MOVE" in client.capabilities():
            client.move(uids, folder)
        else:
            client.copy(uids, folder)
            client.delete_messages(uids)
            client.expunge(uids) if b"UIDPLUS" in client.capabilities() else client.expunge()

    def _reject(self, uid: int, size: int) -> None:
        self._move([uid], self.settings.imap_error_folder)
        self._record_error(f"uid {uid}".encode(), f"message of {size} bytes is over the {self.settings.max_message_bytes}"
                                                  f"-byte limit: moved to {self.settings.imap_error_folder}")

    def _record_error(self, marker: bytes, reason: str) -> None:
        """Staff see it in the store (quarantined) and in the log; the message stays in the error folder."""
        log.error("IMAP: %s", reason)
        key = f"imap-error:{self.uidvalidity}:{content_hash(marker + reason.encode())}"
        with self.store.session() as s:
            if s.query(InboundMessage.id).filter_by(dedupe_key=key).first() is None:
                s.add(InboundMessage(channel="imap", dedupe_key=key, message_id="", sha256="", raw=b"",
                                     received_at=utcnow(), state="quarantined", outcome=reason,
                                     processed_at=utcnow()))

    # ---- the loop -------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                if self.client is None:
                    self.connect()
                    if self.reconnects:
                        log.info("IMAP reconnected to %s:%d after %d attempt(s)", self.target.host, self.target.port,
                                 self.reconnects)
                    self.reconnects = 0
                    delay = 1.0
                n = self.drain()
                if n:
                    self._recount_skipped = False
                    log.info("IMAP: %d message(s) taken from %s", n, self.target.folder)
                self._wait(stop)
            except (TimeoutError, IMAPClientError, OSError, ssl.SSLError, SQLAlchemyError) as exc:
                self.close()
                self.reconnects += 1
                log.warning("IMAP connection to %s:%d lost or refused (%s); retrying in %.0f s",
                            self.target.host, self.target.port, type(exc).__name__, delay)
                stop.wait(delay)
                delay = min(delay * 2, 60.0)
        self.close()

    def _wait(self, stop: threading.Event) -> None:
        """IDLE until the server says something changed (or a short timeout), else poll."""
        client = self.client
        assert client is not None
        if b"IDLE" not in client.capabilities():
            stop.wait(self.settings.imap_poll_seconds)
            return
        # A message that arrives while a command runs is announced (EXISTS) in that command's reply,
        # which imapclient does not hand back for SEARCH, FETCH or MOVE; IDLE will not announce it
        # again. A fresh SELECT counts it. Skipped once only, so a message that cannot be taken
        # never makes this a busy loop.
        if self._select() and not self._recount_skipped:
            self._recount_skipped = True
            return
        client.idle()
        lost = False
        try:
            # a pass at least every imap_poll_seconds anyway, and IDLE re-issued well before
            # the 29 minutes of RFC 2177
            deadline = time.monotonic() + min(25 * 60, max(5.0, self.settings.imap_poll_seconds))
            instant = 0
            while not stop.is_set() and time.monotonic() < deadline:
                t = time.monotonic()
                responses = client.idle_check(timeout=1)
                if any(isinstance(r, tuple) and r and r[0] == b"BYE" for r in responses):
                    lost = True
                    raise ConnectionError("the server said BYE")
                if any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    break
                # idle_check returns at once with nothing when the socket reached EOF
                instant = instant + 1 if not responses and time.monotonic() - t < 0.2 else 0
                if instant >= 3:
                    lost = True
                    raise ConnectionError("the server closed the connection")
        finally:
            if not lost:
                client.idle_done()
