"""The tables. One request = one appointment; a series shares `series_id`.

Raw inbound messages are kept as bytes (nothing is lost) with their processing state; replies
wait in the outbox, written in the same transaction as the change they announce.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Time,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):  # noqa: ANN001, ANN201
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Installation(Base):
    __tablename__ = "installations"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    establishment: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Language(Base):
    __tablename__ = "languages"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name_fr: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    aliases: Mapped[str] = mapped_column(Text, default="")


class Interpreter(Base):
    __tablename__ = "interpreters"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    languages: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    telegram_id: Mapped[str] = mapped_column(String(40), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RequesterInstallation(Base):
    __tablename__ = "requester_installations"
    requester_id: Mapped[int] = mapped_column(ForeignKey("requesters.id", ondelete="CASCADE"), primary_key=True)
    installation_id: Mapped[str] = mapped_column(ForeignKey("installations.id"), primary_key=True)


class Requester(Base):
    __tablename__ = "requesters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    role: Mapped[str] = mapped_column(String(20), default="requester")
    generic: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    telegram_chat_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    installations: Mapped[list[Installation]] = relationship(secondary="requester_installations", lazy="selectin")


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[str] = mapped_column(String(20), default="agent")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class InboundMessage(Base):
    """A message exactly as received; `state` drives the pipeline."""

    __tablename__ = "inbound_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), default="smtp")
    dedupe_key: Mapped[str] = mapped_column(String(600), unique=True)
    message_id: Mapped[str] = mapped_column(String(500), default="")
    mid_key: Mapped[str] = mapped_column(String(800), default="", index=True)  # Message-ID + sender
    sha256: Mapped[str] = mapped_column(String(64))  # not indexed: looked up through dedupe_key
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    mail_from: Mapped[str] = mapped_column(String(500), default="")
    rcpt_to: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20), default="new")  # new, done, ignored, quarantined
    outcome: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    __table_args__ = (Index("ix_inbound_state_id", "state", "id"),)


def request_ref(number: int) -> str:
    """The reference a requester sees (BIQ-000123): the request's id, so it needs no lookup."""
    return f"BIQ-{number:06d}"


class Request(Base):
    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("requesters.id"))  # indexed by ix_requests_requester_date
    status: Mapped[str] = mapped_column(String(20), default="incomplete")
    late_cancellation: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    language: Mapped[str] = mapped_column(String(2), default="fr")
    location_id: Mapped[str | None] = mapped_column(ForeignKey("installations.id"), nullable=True)
    address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    room: Mapped[str | None] = mapped_column(String(200), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(20), nullable=True)
    source_language: Mapped[str] = mapped_column(String(12), default="fr")
    target_language: Mapped[str | None] = mapped_column(String(12), nullable=True)
    date: Mapped[date | None] = mapped_column(Date, nullable=True)
    start_time: Mapped[time | None] = mapped_column(Time, nullable=True)
    duration_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    interpreter_type: Mapped[str | None] = mapped_column(String(20), nullable=True)
    preferred_interpreter_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    preferred_interpreter_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    notify_user: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    user_phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_to_interpreter: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes_to_coordinator: Mapped[str | None] = mapped_column(Text, nullable=True)
    assigned_interpreter_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    series_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    problems: Mapped[str] = mapped_column(Text, default="")  # JSON list of rule codes
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requester: Mapped[Requester] = relationship(lazy="joined")
    __table_args__ = (Index("ix_requests_status_date", "status", "date"),
                      Index("ix_requests_date_start", "date", "start_time"),
                      Index("ix_requests_requester_date", "requester_id", "date"),
                      Index("ix_requests_location_date", "location_id", "date"))

    @property
    def ref(self) -> str:
        return request_ref(self.id)


class RequestEvent(Base):
    """The history of a request: who changed what, when, from which status to which, and why."""

    __tablename__ = "request_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    inbound_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Outbox(Base):
    """A reply waiting to be delivered; `dedupe_key` makes a reply impossible to queue twice."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    kind: Mapped[str] = mapped_column(String(40))
    to_addr: Mapped[str] = mapped_column(String(254))  # indexed by ix_outbox_to_created
    subject: Mapped[str] = mapped_column(String(998), default="")
    message: Mapped[bytes] = mapped_column(LargeBinary)
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    inbound_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),
                      Index("ix_outbox_to_created", "to_addr", "created_at"))


class AuditEntry(Base):
    """Who read or changed what (Law 25); never the content itself."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    details: Mapped[str] = mapped_column(Text, default="")


class LinkCode(Base):
    """A one-time code sent by email to link a Telegram account to a registered requester."""

    __tablename__ = "link_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_user_id: Mapped[str] = mapped_column(String(40), index=True)
    chat_id: Mapped[str] = mapped_column(String(40))
    requester_id: Mapped[int] = mapped_column(ForeignKey("requesters.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class CallbackToken(Base):
    """Inline-button data: random, bound to one user and one action, usable once."""

    __tablename__ = "callback_tokens"
    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(20))
    telegram_user_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Communication(Base):
    """A call or email the interpreter made at the requester's demand: always billable (rule 8)."""

    __tablename__ = "communications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    minutes: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
