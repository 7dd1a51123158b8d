"""Logging for the command line and the worker processes: readable text or one JSON object per
line, and libraries held at levels where they cannot log what they must not."""

from __future__ import annotations

import json
import logging
import os

# Libraries that would log message bodies (aiosmtpd at DEBUG) or the Telegram token (httpx logs URLs):
# whatever the logging configuration, they never go below these levels (Law 25, secrets).
QUIET = {"mail.log": logging.INFO, "httpx": logging.WARNING, "httpcore": logging.WARNING,
         "telegram": logging.INFO, "imapclient": logging.INFO}


def quiet_libraries() -> None:
    for name, level in QUIET.items():
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level or logger.level < level:
            logger.setLevel(level)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`log_format = "json"`); the messages themselves carry no personal data."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "message": record.getMessage()}, ensure_ascii=False)


TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool, fmt: str | None = None) -> None:
    """Log to standard error, as text or JSON (*fmt*, else BIQ_LOG_FORMAT, else text)."""
    handler = logging.StreamHandler()
    handler.biq = True  # ours: `use_format` changes it, never a handler someone else installed
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    use_format(fmt or os.environ.get("BIQ_LOG_FORMAT", "text"))


def use_format(fmt: str) -> None:
    """Text or JSON lines. Applied again once the settings are read, since `log_format` may come
    from the TOML file, which is read after logging has started."""
    formatter = JsonFormatter() if fmt.lower() == "json" else logging.Formatter(TEXT)
    for handler in logging.getLogger().handlers:
        if getattr(handler, "biq", False):
            handler.setFormatter(formatter)
