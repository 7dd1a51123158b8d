"""The command line, the configuration and the templates."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import date, time
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.replies import make_environment, render
from store.sample import SAMPLE_DIRECTORY

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_parse_prints_one_line_per_file_in_order(tmp_path, capsys):
    eml = tmp_path / "a.eml"
    eml.write_bytes(b"From: x@y.z\r\nDate: Fri, 20 Nov 2026 09:00:00 -0500\r\nSubject: annuler BIQ-12\r\n\r\nannuler svp\r\n")
    upd = tmp_path / "b.json"
    upd.write_text(json.dumps({"update_id": 1, "message": {"date": 1795190400, "text": "mes demandes",
                                                             "from": {"id": 5}, "chat": {"id": 5}}}))
    missing = tmp_path / "nope.eml"
    rc = main(["parse", str(eml), str(upd), str(missing)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and rc == 1
    first, second, third = (json.loads(x) for x in lines)
    assert (first["intent"], first["ref"]) == ("cancel", "BIQ-000012")
    assert second["intent"] == "status"
    assert "error" in third


def test_directory_load_is_idempotent_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BIQ_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert main(["directory", "load", str(SAMPLE_DIRECTORY)]) == 0
    out = capsys.readouterr().out
    assert "installations: 36 added" in out and "requesters: 32 added" in out
    assert main(["directory", "load", str(SAMPLE_DIRECTORY)]) == 0
    assert capsys.readouterr().out.strip() == "directory unchanged"
    # a requester removed from the export is deactivated, never deleted
    changed = tmp_path / "dir"
    changed.mkdir()
    for f in SAMPLE_DIRECTORY.glob("*.csv"):
        text = f.read_text(encoding="utf-8")
        if f.name == "requesters.csv":
            text = "\n".join(line for line in text.splitlines() if not line.startswith("marc.gagnon")) + "\n"
        (changed / f.name).write_text(text, encoding="utf-8")
    assert main(["directory", "load", str(changed)]) == 0
    assert "requesters: 0 added, 0 changed, 1 deactivated" in capsys.readouterr().out


def test_directory_load_of_a_wrong_folder_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BIQ_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert main(["directory", "load", str(tmp_path)]) == 2
    assert "no installations.csv" in capsys.readouterr().err


def test_requests_list_json_after_a_pipeline_run(tmp_path, monkeypatch, capsys):
    from bot.config import Settings
    from bot.intake import store_inbound
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    from store.db import Store

    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("BIQ_DATABASE_URL", url)
    settings = Settings(database_url=url, bot_address="biq@ssss.gouv.qc.ca")
    store = Store(url)
    prepare_store(store, settings)
    raw = (FIXTURES / "request_fr.eml").read_bytes()
    store_inbound(store, raw, mail_from="sophie.tremblay.ccomtl@ssss.gouv.qc.ca", rcpt_to=["biq@ssss.gouv.qc.ca"])
    assert Pipeline(store, settings).process_pending() == 1
    assert main(["requests", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert row["ref"] == "BIQ-000001" and row["requester"] == "sophie.tremblay.ccomtl@ssss.gouv.qc.ca"
    assert row["target_language"] == "es" and row["location"] == "clsc-parc-extension"
    assert row["status"] in ("submitted", "incomplete")
    assert main(["requests", "list", "--status", "cancelled"]) == 0
    assert "no requests" in capsys.readouterr().out


def test_settings_from_toml_then_environment(tmp_path):
    cfg = tmp_path / "biq.toml"
    cfg.write_text('smtp_listen = "0.0.0.0:2626"\nbot_address = "biq@example.org"\nreplies_per_sender_per_hour = 5\n')
    s = load_settings(cfg, env={"BIQ_BOT_ADDRESS": "other@example.org"})
    assert s.listen_host_port == ("0.0.0.0", 2626)
    assert s.bot_address == "other@example.org" and s.replies_per_sender_per_hour == 5


@pytest.mark.parametrize("content,env,message", [
    ("smtp_password = 'x'\n", {}, "secret"),
    ("replies_per_sender_per_hour = 'many'\n", {}, "whole number"),
    ("", {"BIQ_OUTBOUND": "ftp://x"}, "BIQ_OUTBOUND"),
    ("", {"BIQ_SMTP_LISTEN": "nonsense"}, "HOST:PORT"),
    ("not toml = = =", {}, "not valid TOML"),
    ("", {"BIQ_EVENT_LOOP": "trio"}, "uvloop or asyncio"),
    ("outbound_connections = 0\n", {}, "at least 1"),
])
def test_bad_settings_are_explained(tmp_path, content, env, message):
    cfg = tmp_path / "biq.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, env=env)


@pytest.mark.parametrize("choice,expected", [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_serve_runs_on_the_chosen_event_loop(choice, expected):
    """`serve` runs on uvloop by default (installed with the bot on Linux) and on asyncio's own
    loop when BIQ_EVENT_LOOP=asyncio."""
    from bot.service import run
    seen = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    run(main(), choice)
    assert len(seen) == 1 and seen[0].split(".")[0] == expected


def test_configuration_error_is_a_sentence_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "requests", "list"], capture_output=True, text=True,
                          env={"BIQ_OUTBOUND": "ftp://x", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 2
    assert "configuration error" in proc.stderr and "Traceback" not in proc.stderr


def test_log_format_from_the_configuration_file(tmp_path):
    """`log_format = "json"` in the TOML file gives one JSON object per log line (it is read
    after logging has started), without BIQ_LOG_FORMAT."""
    cfg = tmp_path / "biq.toml"
    cfg.write_text(f'database_url = "sqlite:///{tmp_path / "biq.db"}"\nlog_format = "json"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIQ_")}
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(cfg), "init"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert any(r["logger"] == "biq.setup" and "directory loaded" in r["message"] for r in lines)


SUMMARY = dict(ref="BIQ-000042", status="submitted", date=date(2026, 12, 3), start_time=time(13, 30), duration=90,
               language_name="espagnol", location_name="CLSC <Parc-Ex> & co", mode="in_person", interpreter_type="bi_rsss",
               preferred_name=None, preferred_note="Ayşe Demir", has_user_phone=True, duplicate_of="BIQ-000041")
CONTEXTS = {
    "submitted": dict(r=SUMMARY, problems=[]),
    "incomplete": dict(r=SUMMARY, problems=["missing_duration", "unclear_date", "bi_rsss_without_interpreter"]),
    "unknown_sender": dict(sender="someone@example.org", coordination="coordination@example.org"),
    "modified": dict(r=SUMMARY),
    "unchanged": dict(r=SUMMARY, stated=False),
    "cancelled": dict(r=SUMMARY, late=True, late_hours=48),
    "not_found": dict(ref="BIQ-000042", action="cancel"),
    "status_list": dict(requests=[{"ref": "BIQ-000042", "date_fr": "jeudi 3 décembre 2026", "date_en": "Thursday",
                                   "time": "13:30", "language_fr": "espagnol", "language_en": "Spanish",
                                   "place": "CLSC <Parc-Ex> & co", "status": "submitted",
                                   "line_fr": "BIQ-000042 — jeudi", "line_en": "BIQ-000042 — Thursday"}]),
}


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_template_renders_in_both_languages(kind, lang):
    env = make_environment()
    out = render(env, kind, lang, bot_name="Banque d'interprètes du RSSS", **CONTEXTS[kind])
    assert out.subject and out.text.strip() and out.html.startswith("<!DOCTYPE html>")
    if "r" in CONTEXTS[kind] or kind == "not_found":
        assert "[BIQ-000042]" in out.subject
    if "r" in CONTEXTS[kind]:
        assert "CLSC <Parc-Ex> & co" in out.text
        assert "CLSC &lt;Parc-Ex&gt; &amp; co" in out.html and "<Parc-Ex>" not in out.html


def test_templates_refuse_undefined_variables():
    from jinja2 import UndefinedError
    with pytest.raises(UndefinedError):
        render(make_environment(), "submitted", "fr", bot_name="x")


def test_workflow_from_the_command_line(tmp_path, monkeypatch, capsys):
    from bot.config import Settings
    from bot.intake import store_inbound
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    from store.db import Store

    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("BIQ_DATABASE_URL", url)
    monkeypatch.setenv("BIQ_OUTBOUND", f"dir:{tmp_path / 'out'}")
    settings = Settings(database_url=url, bot_address="biq@ssss.gouv.qc.ca")
    store = Store(url)
    prepare_store(store, settings)
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from bot.replies import format_date
    when = datetime.now(ZoneInfo("America/Montreal")).date() + timedelta(days=20)
    raw = (FIXTURES / "request_fr.eml").read_bytes().replace("jeudi 3 décembre 2026".encode(),
                                                             format_date(when, "fr").encode())
    store_inbound(store, raw, mail_from="x", rcpt_to=[])
    Pipeline(store, settings).process_pending()
    assert main(["requests", "show", "BIQ-1"]) == 0
    assert "BIQ-000001" in capsys.readouterr().out
    assert main(["requests", "accept", "BIQ-1"]) == 1  # not offered yet: refused with a sentence
    assert "not awaiting" in capsys.readouterr().err
    assert main(["requests", "offer", "BIQ-1", "Carlos", "Ramirez"]) == 0
    assert "Carlos Eduardo Ramírez" in capsys.readouterr().out
    assert main(["requests", "accept", "BIQ-1"]) == 0
    assert main(["requests", "comm", "BIQ-1", "15", "appel", "de", "rappel"]) == 0
    assert main(["requests", "complete", "BIQ-1"]) == 0
    capsys.readouterr()
    assert main(["report", "billing", "--month", when.strftime("%Y-%m"), "--csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("establishment,completed")
    assert out[1].startswith("CIUSSS du Centre-Ouest") and ",1,1.5,0,0.0,1,15," in out[1]
    assert main(["report", "billing", "--month", "2027-13"]) == 2


def test_an_email_change_keeps_the_requesters_history(tmp_path, capsys, monkeypatch):
    from sqlalchemy import select

    from store.db import Store
    from store.models import Request, Requester
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("BIQ_DATABASE_URL", url)
    assert main(["directory", "load", str(SAMPLE_DIRECTORY)]) == 0
    store = Store(url)
    from store.db import utcnow
    with store.session() as s:
        marc = s.scalar(select(Requester).where(Requester.email == "marc.gagnon.ccomtl@ssss.gouv.qc.ca"))
        s.add(Request(requester_id=marc.id, status="submitted", created_at=utcnow(), updated_at=utcnow()))
        marc_id = marc.id
    changed = tmp_path / "dir"
    changed.mkdir()
    for f in SAMPLE_DIRECTORY.glob("*.csv"):
        text = f.read_text(encoding="utf-8")
        if f.name == "requesters.csv":
            text = text.replace("marc.gagnon.ccomtl@", "marc.gagnon2.ccomtl@")
        (changed / f.name).write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["directory", "load", str(changed)]) == 0
    assert "requesters: 0 added, 1 changed, 0 deactivated" in capsys.readouterr().out
    with store.session() as s:
        marc = s.get(Requester, marc_id)
        assert marc.email == "marc.gagnon2.ccomtl@ssss.gouv.qc.ca" and marc.active
        assert s.scalars(select(Request)).one().requester_id == marc_id
    store.dispose()


REQUEST_KINDS = {"submitted", "incomplete", "modified", "cancelled", "offered", "confirmed", "declined", "completed",
                 "unfilled", "reminder", "not_found", "unchanged"}


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_template_kind_renders_strictly_with_the_reference_in_the_subject(lang):
    from bot.replies import sample_context, template_kinds
    kinds = template_kinds()
    assert len(kinds) >= 16
    env = make_environment()
    for kind in kinds:
        out = render(env, kind, lang, bot_name="Banque d'interprètes du RSSS", **sample_context(kind))
        assert out.subject and out.text.strip() and "— biq-bot —" in out.text or kind in ("not_linked",), kind
        if kind in REQUEST_KINDS:
            assert "[BIQ-000123]" in out.subject, (kind, out.subject)
