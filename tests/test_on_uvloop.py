"""The end-to-end stories again, on uvloop: the event loop `biq-bot serve` runs on by default
(`bot.service.run`). The rest of the suite runs on asyncio's own loop, as pytest-asyncio gives it;
these make sure SMTP in and out (aiosmtpd, aiosmtplib), a relay that fails, and Telegram through
python-telegram-bot's HTTP client and its webhook server behave the same on uvloop. The loop
is chosen for this file by `pytest_asyncio_loop_factories` in conftest.py."""

from __future__ import annotations

import asyncio

from .test_email_loop import (  # noqa: F401 - collected again here, on uvloop
    test_incomplete_then_completed_by_reply,
    test_relay_down_reply_waits_and_goes_out_once,
    test_store_unavailable_answers_451_then_recovers,
)
from .test_telegram import (  # noqa: F401 - the fixture and the tests, collected again here
    chatbot,
    test_webhook_mode_checks_the_secret_token,
    test_whole_story_email_offer_accept_confirm_late_cancel_billing,
)


async def test_these_tests_run_on_uvloop():
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
