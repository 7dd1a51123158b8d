"""A local HTTP server that speaks the part of the Telegram Bot API the bot uses.

python-telegram-bot talks to it with its real HTTP client (`base_url`). Tests queue Update JSON
with `push_*` and read what the bot sent in `sent`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from .conftest import free_port

BOT_USER = {"id": 424242, "is_bot": True, "first_name": "BIQ", "username": "biq_test_bot",
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}


class FakeBotApi:
    def __init__(self, token: str = "123456:TEST") -> None:
        self.token = token
        self.port = free_port()
        self.updates: list[dict] = []
        self.sent: list[dict] = []  # every call other than getUpdates/getMe, with its parameters
        self.cond = threading.Condition()
        self._ids = itertools.count(1)
        self.delay = 0.0  # seconds each sendMessage takes, as over a network
        self.in_flight = self.most_in_flight = 0
        self._update_ids = itertools.count(900_000)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                ctype = self.headers.get("Content-Type", "")
                params: dict = {}
                if "json" in ctype and body:
                    params = json.loads(body)
                elif body:
                    for k, v in parse_qs(body).items():
                        try:
                            params[k] = json.loads(v[0])
                        except ValueError:
                            params[k] = v[0]
                prefix = f"/bot{api.token}/"
                if not self.path.startswith(prefix):
                    self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                method = self.path[len(prefix):]
                result = api.call(method, params)
                self._reply(200, {"ok": True, "result": result})

            def _reply(self, code: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot hung up (its long poll, when it stops); updates stay until confirmed

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeBotApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- what the bot calls ------------------------------------------------------------------------
    def call(self, method: str, params: dict):  # noqa: ANN201
        if method == "getMe":
            return BOT_USER
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
            with self.cond:
                while True:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                    if self.updates or time.monotonic() >= deadline:
                        return list(self.updates)
                    self.cond.wait(timeout=max(0.01, deadline - time.monotonic()))
        if method == "sendMessage" and self.delay:
            with self.cond:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            time.sleep(self.delay)
            with self.cond:
                self.in_flight -= 1
        with self.cond:
            self.sent.append({"method": method, **params})
            self.cond.notify_all()
        if method in ("sendMessage", "editMessageText", "editMessageReplyMarkup"):
            return {"message_id": next(self._ids), "date": int(time.time()),
                    "chat": {"id": int(params.get("chat_id") or 1), "type": "private"},
                    "text": str(params.get("text", "")), "from": BOT_USER}
        return True

    # ---- what tests send ----------------------------------------------------------------------------
    def _push(self, update: dict) -> int:
        uid = next(self._update_ids)
        update["update_id"] = uid
        with self.cond:
            self.updates.append(update)
            self.cond.notify_all()
        return uid

    def push_text(self, user_id: int, text: str, first_name: str = "Test", language_code: str = "fr",
                  date: int | None = None, reply_to: dict | None = None) -> int:
        """A private message; *reply_to* is a message the bot sent, which this one answers (a swipe-reply)."""
        msg = {"message_id": next(self._ids), "date": date or int(time.time()),
               "from": {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code},
               "chat": {"id": user_id, "type": "private", "first_name": first_name}, "text": text}
        if reply_to is not None:
            msg["reply_to_message"] = {"message_id": next(self._ids), "date": int(time.time()), "from": BOT_USER,
                                       "chat": {"id": user_id, "type": "private"}, "text": reply_to["text"]}
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self._push({"message": msg})

    def push_callback(self, user_id: int, data: str, message_id: int = 1) -> int:
        return self._push({"callback_query": {
            "id": str(next(self._ids)), "chat_instance": "1", "data": data,
            "from": {"id": user_id, "is_bot": False, "first_name": "Test"},
            "message": {"message_id": message_id, "date": int(time.time()), "chat": {"id": user_id, "type": "private"},
                        "text": "…", "from": BOT_USER}}})

    def messages_to(self, chat_id: int) -> list[dict]:
        with self.cond:
            return [m for m in self.sent if m["method"] == "sendMessage" and int(m["chat_id"]) == chat_id]
