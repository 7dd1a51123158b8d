"""Bringing a store up to date: migrations, and the sample directory when nothing is loaded yet."""

from __future__ import annotations

import logging

from store.db import Store
from store.directory_sync import is_empty, load_directory
from store.sample import SAMPLE_DIRECTORY

from .config import Settings

log = logging.getLogger("biq.setup")


def prepare_store(store: Store, settings: Settings) -> None:
    store.migrate()
    with store.session() as s:
        if is_empty(s):
            folder = settings.directory or SAMPLE_DIRECTORY
            report = load_directory(s, folder)
            log.info("directory loaded from %s: %s", "the embedded sample" if not settings.directory else folder,
                     "; ".join(report.lines()))


def waiting_count(store: Store) -> int:
    """Messages stored and not processed yet (a backlog left by a stop or a crash)."""
    from sqlalchemy import func, select

    from store.models import InboundMessage
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.state == "new")) or 0


def processed_among(store: Store, ids: list[int]) -> list[int]:
    """Those of *ids* that are processed (whichever instance did it): flow control's check."""
    from sqlalchemy import select

    from store.models import InboundMessage
    with store.session() as s:
        return list(s.scalars(select(InboundMessage.id).where(InboundMessage.id.in_(ids), InboundMessage.state != "new")))
