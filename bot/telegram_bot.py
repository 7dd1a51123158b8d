"""The Telegram channel (python-telegram-bot `Application`): long polling, or a webhook with a
secret token. Handlers are thin: commands go to `ChatCommands`, free text from requesters is
stored as an inbound message and goes through the same pipeline as email.

`BIQ_TELEGRAM_TOKEN` turns it on; `BIQ_TELEGRAM_API_URL` points it at another Bot API server
(python-telegram-bot's `base_url`, e.g. a self-hosted telegram-bot-api at http://127.0.0.1:8081/bot).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from store.db import Store

from .chat_commands import Answer, ChatCommands
from .config import Settings
from .intake import store_inbound
from .pipeline import Pipeline

log = logging.getLogger("biq.telegram")


def keyboard_markup(rows: list) -> InlineKeyboardMarkup | None:
    """Rows of (label, data) tuples or of {"text", "callback_data"} dicts → an inline keyboard."""
    if not rows:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b["text"], callback_data=b["callback_data"])
                                  if isinstance(b, dict) else InlineKeyboardButton(b[0], callback_data=b[1])
                                  for b in row] for row in rows])


class TelegramChannel:
    def __init__(self, settings: Settings, store: Store, pipeline: Pipeline, on_stored: Callable[[], None]) -> None:
        self.settings = settings
        self.store = store
        self.commands = ChatCommands(store, pipeline)
        self.on_stored = on_stored
        builder = Application.builder().token(settings.telegram_token)
        if settings.telegram_api_url:
            builder = builder.base_url(settings.telegram_api_url)
        self.app = builder.build()
        self.app.add_handler(MessageHandler(filters.COMMAND, self.on_command))
        self.app.add_handler(CallbackQueryHandler(self.on_callback))
        self.app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        self.app.add_error_handler(self.on_error)

    @property
    def bot(self):  # noqa: ANN201
        return self.app.bot

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        if self.settings.telegram_webhook_url:
            host, _, port = self.settings.telegram_webhook_listen.rpartition(":")
            await self.app.updater.start_webhook(listen=host or "127.0.0.1", port=int(port), url_path="telegram",
                                                 webhook_url=self.settings.telegram_webhook_url,
                                                 secret_token=self.settings.telegram_webhook_secret or None)
            log.info("Telegram webhook listening on %s", self.settings.telegram_webhook_listen)
        else:
            await self.app.updater.start_polling(poll_interval=0.2, timeout=10)
            log.info("Telegram long polling started")

    async def stop(self) -> None:
        if self.app.updater and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def _answer(self, update: Update, answer: Answer) -> None:
        if answer.text and update.effective_chat is not None:
            await self.app.bot.send_message(update.effective_chat.id, answer.text,
                                            reply_markup=keyboard_markup(answer.keyboard))

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        user = update.effective_user
        if msg is None or user is None or not msg.text or update.effective_chat.type != "private":
            return
        command, _, args = msg.text.partition(" ")
        answer = await asyncio.to_thread(self.commands.handle, update_id=update.update_id, user_id=user.id,
                                         chat_id=msg.chat_id, command=command, args=args.strip()[:1000],
                                         lang="en" if (user.language_code or "").startswith("en") else "fr")
        await self._answer(update, answer)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.from_user is None:
            return
        chat_id = query.message.chat.id if query.message else query.from_user.id
        answer = await asyncio.to_thread(self.commands.callback, update_id=update.update_id,
                                         user_id=query.from_user.id, chat_id=chat_id, data=query.data or "")
        await query.answer(answer.text[:190] if answer.text else None)
        if query.message is not None and answer.text:
            try:
                await query.edit_message_reply_markup(reply_markup=None)  # a used button disappears
            except Exception:  # noqa: BLE001 - the message may be too old to edit: not important
                pass
        await self._answer(update, answer)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_chat is None or update.effective_chat.type != "private":
            return
        raw = json.dumps(update.to_dict(), ensure_ascii=False).encode()
        await asyncio.to_thread(store_inbound, self.store, raw, mail_from=f"telegram:{update.effective_chat.id}",
                                rcpt_to=[], channel="telegram", dedupe_key=f"tg:{update.update_id}")
        self.on_stored()

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("Telegram handler failed: %s", type(context.error).__name__)
