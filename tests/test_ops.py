"""Operations: status, check-config, health and metrics, reminders, template overrides."""

from __future__ import annotations

import json
import ssl
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import trustme
from sqlalchemy import select

from bot.cli import main
from bot.pipeline import Pipeline
from bot.reminders import send_due_reminders
from bot.setup import prepare_store
from store.db import Store
from store.models import Outbox, Request

from .conftest import Sink, free_port, make_settings, running_bot, wait_for
from .test_email_loop import complete_request, in_days, make_mail, send

TZ = ZoneInfo("America/Montreal")


def test_status_reports_queues(tmp_path, monkeypatch, capsys):
    from bot.intake import store_inbound
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("BIQ_DATABASE_URL", url)
    settings = make_settings(url, f"dir:{tmp_path}")
    store = Store(url)
    prepare_store(store, settings)
    store_inbound(store, make_mail(complete_request(in_days(9))).as_bytes(), mail_from="", rcpt_to=[])
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "inbound waiting           1" in out and "outbox waiting            0" in out
    Pipeline(store, settings).process_pending()
    assert main(["status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["inbound_waiting"] == 0 and st["outbox_waiting"] == 1 and st["requests_by_status"] == {"submitted": 1}
    store.dispose()


def test_check_config_says_what_is_wrong(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("BIQ_DATABASE_URL", url)
    monkeypatch.setenv("BIQ_OUTBOUND", f"smtp://127.0.0.1:{free_port()}")
    monkeypatch.setenv("BIQ_TELEGRAM_TOKEN", "not-a-token")
    assert main(["check-config"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM store" in out and "biq-bot init" in out
    assert "PROBLEM outbound" in out and "PROBLEM telegram" in out
    assert main(["init"]) == 0
    monkeypatch.setenv("BIQ_OUTBOUND", f"dir:{tmp_path}")
    monkeypatch.setenv("BIQ_TELEGRAM_TOKEN", "123456:" + "A" * 35)
    capsys.readouterr()
    assert main(["check-config"]) == 0
    assert "PROBLEM" not in capsys.readouterr().out


def test_check_config_checks_the_relay_certificate_as_the_sender_does(tmp_path, monkeypatch, capsys):
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    sink = Sink(tls_context=server_tls).start()  # offers STARTTLS, as most relays do
    try:
        monkeypatch.setenv("BIQ_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
        monkeypatch.setenv("BIQ_OUTBOUND", f"smtp://127.0.0.1:{sink.port}")
        assert main(["init"]) == 0
        capsys.readouterr()
        assert main(["check-config"]) == 1  # a certificate no trusted authority signed: the sender would fail
        out = capsys.readouterr().out
        assert "PROBLEM outbound" in out and "SSLCertVerificationError" in out
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # as if the system trusted it
        assert main(["check-config"]) == 0
    finally:
        sink.stop()


async def test_healthz_and_metrics(db_url, sink):
    port = free_port()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}", http_listen=f"127.0.0.1:{port}")
    async with running_bot(settings) as service:
        await send(service.port, make_mail(complete_request(in_days(10))))
        await wait_for(lambda: sink.messages)
        async with httpx.AsyncClient() as c:
            health = await c.get(f"http://127.0.0.1:{port}/healthz")
            metrics = await c.get(f"http://127.0.0.1:{port}/metrics")
            missing = await c.get(f"http://127.0.0.1:{port}/nope")
        assert health.status_code == 200 and health.text == "ok\n"
        assert missing.status_code == 404
        text = metrics.text
        assert 'biq_messages_in_total{channel="smtp"}' in text and "biq_processing_seconds_bucket" in text
        assert 'biq_replies_out_total{channel="email"}' in text


def test_reminders_go_once_the_day_before(db_url, tmp_path):
    from bot.intake import store_inbound
    settings = make_settings(db_url, f"dir:{tmp_path}", reminder_hour=14, telegram_token="123456:TEST")
    store = Store(db_url)
    prepare_store(store, settings)
    store_inbound(store, make_mail(complete_request(in_days(1))).as_bytes(), mail_from="", rcpt_to=[])
    pipeline = Pipeline(store, settings)
    pipeline.process_pending()
    with store.session() as s:
        req = s.scalars(select(Request)).one()
        req.status, req.assigned_interpreter_id = "confirmed", "int-001"
    today = datetime.now(TZ).replace(hour=9, minute=0)
    assert send_due_reminders(store, pipeline, now=today) == 0  # before the reminder hour
    afternoon = today.replace(hour=15)
    assert send_due_reminders(store, pipeline, now=afternoon) == 1
    assert send_due_reminders(store, pipeline, now=afternoon + timedelta(minutes=5)) == 0  # never twice
    with store.session() as s:
        kinds = sorted((o.kind, o.channel) for o in s.scalars(select(Outbox).where(Outbox.kind == "reminder")))
    assert kinds == [("reminder", "email"), ("reminder", "telegram")]
    store.dispose()


def test_a_bank_template_folder_overrides_the_built_in_ones(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "submitted.fr.j2").write_text('{% set subject = "[" ~ r.ref ~ "] Bien reçu!" %}Bonjour de la banque {{ r.ref }}\n')
    monkeypatch.setenv("BIQ_TEMPLATES_DIR", str(folder))
    assert main(["templates", "preview", "submitted", "--lang", "fr"]) == 0
    out = capsys.readouterr().out
    assert "Subject: [BIQ-000123] Bien reçu!" in out and "Bonjour de la banque BIQ-000123" in out
    assert main(["templates", "preview", "submitted", "--lang", "en"]) == 0  # not overridden: built-in
    assert "Request received" in capsys.readouterr().out
    assert main(["templates", "preview", "nope"]) == 2


def test_the_configuration_example_documents_every_setting_and_loads():
    from dataclasses import fields
    from pathlib import Path

    from bot.config import SECRETS, Settings, load_settings
    example = Path(__file__).resolve().parent.parent / "biq-bot.toml.example"
    text = example.read_text()
    missing = [f.name for f in fields(Settings) if f.name not in SECRETS and f.name not in text]
    assert not missing, f"settings not documented in biq-bot.toml.example: {missing}"
    for secret in SECRETS:
        assert f"BIQ_{secret.upper()}" in text
    s = load_settings(example, env={})
    assert s.database_url.startswith("postgresql://") and s.late_cancellation_hours == 48
