"""Settings: embedded defaults, then a TOML file, then BIQ_* environment variables (secrets only there)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and why, in one sentence."""


@dataclass
class Settings:
    database_url: str = "sqlite:///biq-data/biq.db"
    smtp_listen: str = "127.0.0.1:2525"
    outbound: str = "dir:biq-data/outbox"
    bot_address: str = "biq@localhost"
    bot_name: str = "Banque d'interprètes du RSSS"
    extra_addresses: list[str] = field(default_factory=list)
    timezone: str = "America/Montreal"
    directory: str = ""  # folder of CSV files loaded at start-up when the store is empty
    max_message_bytes: int = 25 * 1024 * 1024
    smtp_timeout: int = 300
    replies_per_sender_per_hour: int = 20
    outbound_max_attempts: int = 12
    outbound_backoff_seconds: float = 30.0
    outbound_backoff_max_seconds: float = 3600.0
    outbound_lease_seconds: float = 300.0  # a reply claimed by an instance that died is retried after this
    outbound_connections: int = 4  # connections to the SMTP relay (or chats sent to) at once
    smtp_user: str = ""
    smtp_password: str = ""
    late_cancellation_hours: int = 48
    poll_interval: float = 1.0
    pipeline_workers: int = 1  # processes that parse and process messages; 0 = inside the serve process
    pipeline_batch: int = 4  # messages processed per transaction
    smtp_flow_limit: int = 1  # past this many messages no worker has taken yet, the answer to DATA waits for the pipeline
    smtp_flow_max_delay: float = 10.0  # ... for at most this many seconds
    templates_dir: str = ""  # a folder whose templates override the built-in ones
    telegram_token: str = ""
    telegram_api_url: str = ""  # another Bot API server, e.g. http://127.0.0.1:8081/bot
    telegram_webhook_url: str = ""  # set to use a webhook instead of long polling
    telegram_webhook_listen: str = "127.0.0.1:8443"
    telegram_webhook_secret: str = ""
    link_code_minutes: int = 15
    imap_url: str = ""  # imaps://user@host:port/INBOX turns the IMAP reader on
    imap_password: str = ""
    imap_processed_folder: str = "BIQ/Traités"
    imap_error_folder: str = "BIQ/Erreurs"
    imap_poll_seconds: float = 30.0
    verp_prefix: str = "bounces"  # replies leave with MAIL FROM bounces+<outbox id>@<bot domain>
    hard_bounces_before_undeliverable: int = 3
    trusted_authserv_id: str = ""  # when set, requester mail must carry its Authentication-Results: dmarc/dkim=pass
    retention_days: int = 730
    http_listen: str = ""  # e.g. 127.0.0.1:9108 serves /healthz and /metrics
    reminder_hour: int = 14  # local hour after which the day-before reminders go out
    log_format: str = "text"  # or "json"
    event_loop: str = "uvloop"  # or "asyncio"; uvloop when it is installed (Linux, macOS)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.smtp_listen.rpartition(":")
        try:
            return host or "127.0.0.1", int(port)
        except ValueError as exc:
            raise ConfigError(f"BIQ_SMTP_LISTEN must be HOST:PORT, not {self.smtp_listen!r}") from exc

    @property
    def bot_domain(self) -> str:
        return self.bot_address.rpartition("@")[2] or "localhost"

    @property
    def own_addresses(self) -> set[str]:
        return {a.lower() for a in [self.bot_address, *self.extra_addresses] if a}

    def verp_address(self, outbox_id: int) -> str:
        return f"{self.verp_prefix}+{outbox_id}@{self.bot_domain}"

    def verp_id(self, address: str) -> int | None:
        """The outbox id a VERP return address stands for (bounces+123@domain → 123)."""
        local, _, domain = address.strip().lower().rpartition("@")
        prefix = self.verp_prefix.lower() + "+"
        if domain == self.bot_domain.lower() and local.startswith(prefix) and local[len(prefix):].isdigit():
            return int(local[len(prefix):])
        return None

    def accepts(self, address: str) -> bool:
        return address.strip().lower() in self.own_addresses or self.verp_id(address) is not None


ENV_PREFIX = "BIQ_"
SECRETS = {"smtp_password", "telegram_token", "telegram_webhook_secret", "imap_password"}


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults ← TOML file (BIQ_CONFIG or *path*) ← environment."""
    env = dict(os.environ if env is None else env)
    s = Settings()
    path = path or env.get("BIQ_CONFIG")
    if path:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"configuration file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {p} is not valid TOML: {exc}") from exc
        for f in fields(Settings):
            if f.name in data:
                if f.name in SECRETS:
                    raise ConfigError(f"{f.name} is a secret: set it with {ENV_PREFIX}{f.name.upper()}, not in {p}")
                setattr(s, f.name, _coerce(f.name, data[f.name], getattr(s, f.name)))
    for f in fields(Settings):
        key = ENV_PREFIX + f.name.upper()
        if key in env and env[key] != "":
            setattr(s, f.name, _coerce(f.name, env[key], getattr(s, f.name)))
    s.listen_host_port  # noqa: B018 - validates early
    if not (s.outbound.startswith("dir:") or s.outbound.startswith(("smtp://", "smtps://"))):
        raise ConfigError(f"BIQ_OUTBOUND must be dir:PATH or smtp://host:port, not {s.outbound!r}")
    if s.outbound_connections < 1:
        raise ConfigError(f"outbound_connections must be at least 1, not {s.outbound_connections}")
    if s.event_loop not in ("uvloop", "asyncio"):
        raise ConfigError(f"BIQ_EVENT_LOOP must be uvloop or asyncio, not {s.event_loop!r}")
    return s


def _coerce(name: str, value: object, default: object) -> object:
    if isinstance(default, bool):
        return str(value).lower() in ("1", "true", "yes", "on", "oui")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a whole number, not {value!r}") from exc
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a number, not {value!r}") from exc
    if isinstance(default, list):
        if isinstance(value, list):
            return [str(v) for v in value]
        return [p.strip() for p in str(value).split(",") if p.strip()]
    return str(value)
