"""The `biq-bot` command: one entry point for every operation.

    biq-bot init                      create or upgrade the store, load the sample directory if empty
    biq-bot directory load DIR        load or update the directory from CSV files
    biq-bot serve                     run the SMTP server, the pipeline and the outbox sender
    biq-bot parse [--data DIR] FILE…  print the structured request of each message file as JSON
    biq-bot requests list [--status S] [--json]
    biq-bot requests show|search|offer|accept|decline|cancel|complete|unfilled|comm …
    biq-bot report billing --month YYYY-MM [--csv]
    biq-bot purge [--older-than 730d]
    biq-bot status [--json] | check-config | templates preview NAME [--lang fr|en]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, Settings, load_settings
from .logs import setup_logging, use_format


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    use_format(settings.log_format)
    return settings


def _store(settings: Settings):  # noqa: ANN202
    from store.db import Store
    return Store(settings.database_url)


def cmd_init(args: argparse.Namespace) -> int:
    from .setup import prepare_store
    settings = _settings(args)
    store = _store(settings)
    prepare_store(store, settings)
    print(f"store ready: {store.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_directory_load(args: argparse.Namespace) -> int:
    from store.directory_sync import load_directory
    settings = _settings(args)
    store = _store(settings)
    store.migrate()
    with store.session() as s:
        report = load_directory(s, args.folder)
    for line in report.lines():
        print(line)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .service import Service, run
    settings = _settings(args)
    run(Service(settings).run_forever(), settings.event_loop)
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    """One JSON object per file, in order; a file that cannot be read still gets a line."""
    from parsers.directory import Directory
    from parsers.request import parse_email, parse_update
    from store.sample import SAMPLE_DIRECTORY

    directory = Directory.from_folder(args.data or SAMPLE_DIRECTORY).build()
    status = 0
    out = sys.stdout
    for name in args.files:
        path = Path(name)
        try:
            if path.suffix.lower() == ".json":
                parsed, _ = parse_update(directory, json.loads(path.read_text(encoding="utf-8")))
            else:
                parsed, _ = parse_email(directory, path.read_bytes())
            out.write(parsed.to_json() + "\n")
        except (OSError, ValueError) as exc:
            out.write(json.dumps({"intent": "other", "ref": None, "language": "fr", "appointments": [],
                                  "error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False) + "\n")
            status = 1
    out.flush()
    return status


REQUEST_FIELDS = ("mode", "location", "source_language", "target_language", "interpreter_type",
                  "preferred_interpreter", "notify_user", "user_phone", "reason", "message_to_interpreter",
                  "notes_to_coordinator")


def request_as_dict(r) -> dict:  # noqa: ANN001 - store.models.Request
    from store.models import request_ref
    return {
        "ref": r.ref, "status": r.status, "requester": r.requester.email,
        "appointments": [{"date": r.date.isoformat() if r.date else None,
                          "start_time": r.start_time.strftime("%H:%M") if r.start_time else None,
                          "duration_minutes": r.duration_minutes}],
        "date": r.date.isoformat() if r.date else None,
        "start_time": r.start_time.strftime("%H:%M") if r.start_time else None,
        "duration_minutes": r.duration_minutes,
        "mode": r.mode, "location": r.location_id, "address": r.address,
        "source_language": r.source_language, "target_language": r.target_language,
        "interpreter_type": r.interpreter_type,
        "preferred_interpreter": r.preferred_interpreter_id or r.preferred_interpreter_name,
        "notify_user": r.notify_user, "user_phone": r.user_phone, "reason": r.reason,
        "message_to_interpreter": r.message_to_interpreter, "notes_to_coordinator": r.notes_to_coordinator,
        "series": request_ref(r.series_id) if r.series_id else None,
        "late_cancellation": r.late_cancellation,
        "problems": json.loads(r.problems or "[]"),
    }


def cmd_requests_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from store.models import Request
    settings = _settings(args)
    store = _store(settings)
    store.migrate()
    with store.session() as s:
        q = select(Request).order_by(Request.id)
        if args.status:
            q = q.where(Request.status == args.status)
        rows = [request_as_dict(r) for r in s.scalars(q)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print("no requests")
        return 0
    print(f"{'ref':12} {'status':11} {'date':10} {'time':5} {'min':>4} {'lang':5} {'location':28} requester")
    for r in rows:
        print(f"{r['ref']:12} {r['status']:11} {r['date'] or '—':10} {r['start_time'] or '—':5} "
              f"{r['duration_minutes'] or '—':>4} {r['target_language'] or '—':5} {(r['location'] or '—')[:28]:28} "
              f"{r['requester']}")
    return 0


def cmd_report_billing(args: argparse.Namespace) -> int:
    from .reports import as_csv, as_table, billing
    settings = _settings(args)
    store = _store(settings)
    store.migrate()
    try:
        with store.session() as s:
            lines = billing(s, args.month)
    except ValueError as exc:
        print(f"biq-bot: {exc}", file=sys.stderr)
        return 2
    print(as_csv(lines) if args.csv else as_table(lines, args.month), end="" if args.csv else "\n")
    return 0


def cmd_requests_action(args: argparse.Namespace) -> int:
    """Staff actions from the command line go through the same workflow as chat commands."""
    import getpass

    from .chat_commands import ChatCommands
    from .pipeline import Pipeline
    from .setup import prepare_store
    from .workflow import Actor
    settings = _settings(args)
    store = _store(settings)
    prepare_store(store, settings)
    commands = ChatCommands(store, Pipeline(store, settings))
    text = " ".join(args.args)
    actor = f"cli:{getpass.getuser()}"
    if getattr(args, "json", False) and args.action in ("show", "search"):
        return _requests_json(store, commands, args.action, text, actor)
    answer = commands.run_as(Actor("staff", f"cli:{getpass.getuser()}"), args.action, text)
    print(answer.text, file=sys.stdout if answer.ok else sys.stderr)
    return 0 if answer.ok else 1


def cmd_purge(args: argparse.Namespace) -> int:
    import getpass

    from .purge import parse_duration, purge
    settings = _settings(args)
    try:
        older = parse_duration(args.older_than or f"{settings.retention_days}d")
    except ValueError as exc:
        print(f"biq-bot: {exc}", file=sys.stderr)
        return 2
    store = _store(settings)
    store.migrate()
    with store.session() as s:
        report = purge(s, older, actor=f"cli:{getpass.getuser()}")
    for line in report.lines():
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .ops import status, status_text
    settings = _settings(args)
    store = _store(settings)
    store.migrate()
    st = status(store)
    print(json.dumps(st, indent=1) if args.json else status_text(st))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from .ops import check_config
    checks = check_config(args.config)
    for c in checks:
        print(f"{'ok     ' if c.ok else 'PROBLEM'} {c.name:14} {c.sentence}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_templates_preview(args: argparse.Namespace) -> int:
    from .replies import make_environment, render, sample_context, template_kinds
    settings = _settings(args)
    if args.name not in template_kinds():
        print(f"biq-bot: no template {args.name!r}; there are: {', '.join(template_kinds())}", file=sys.stderr)
        return 2
    out = render(make_environment(settings.templates_dir or None), args.name, args.lang,
                 bot_name=settings.bot_name, **sample_context(args.name))
    print(f"Subject: {out.subject}\n\n{out.html if args.html else out.text}")
    return 0


def _requests_json(store, commands, action: str, text: str, actor: str) -> int:  # noqa: ANN001
    """`requests show|search --json`: the same look-ups, as JSON, audited like any staff read."""
    from store.db import utcnow
    from store.models import AuditEntry, Request, RequestEvent

    from .chat_commands import parse_ref
    from .workflow import WorkflowError
    with store.session() as s:
        try:
            if action == "show":
                n = parse_ref(text)
                req = s.get(Request, n) if n else None
                if req is None:
                    print(f"biq-bot: request not found: {text}", file=sys.stderr)
                    return 1
                out = request_as_dict(req)
                out["history"] = [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                   "from": e.from_status, "to": e.to_status, "reason": e.reason}
                                  for e in s.query(RequestEvent).filter_by(request_id=req.id).order_by(RequestEvent.id)]
                s.add(AuditEntry(at=utcnow(), actor=actor, action="read", request_id=req.id, details="show --json"))
            else:
                out = [request_as_dict(r) for r in commands.search(s, text)]
                s.add(AuditEntry(at=utcnow(), actor=actor, action="search", details=text[:200]))
        except WorkflowError as exc:
            print(f"biq-bot: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="biq-bot", description="Interpreter requests by email and chat.")
    p.add_argument("--config", help="TOML configuration file (default: $BIQ_CONFIG, then built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the store; load the sample directory if empty").set_defaults(func=cmd_init)
    dp = sub.add_parser("directory", help="the directory of installations, interpreters, requesters, staff")
    dsub = dp.add_subparsers(dest="action", required=True)
    dl = dsub.add_parser("load", help="load or update the directory from a folder of CSV files")
    dl.add_argument("folder")
    dl.set_defaults(func=cmd_directory_load)
    sub.add_parser("serve", help="run the bot").set_defaults(func=cmd_serve)
    sp = sub.add_parser("parse", help="print the structured request of each message file as JSON")
    sp.add_argument("--data", help="directory folder (installations.csv, interpreters.csv, languages.csv)")
    sp.add_argument("files", nargs="+")
    sp.set_defaults(func=cmd_parse)
    rp = sub.add_parser("requests", help="look at the stored requests")
    rsub = rp.add_subparsers(dest="action", required=True)
    rl = rsub.add_parser("list", help="list requests")
    rl.add_argument("--status", choices=["incomplete", "submitted", "offered", "confirmed", "completed",
                                         "cancelled", "unfilled"])
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func=cmd_requests_list)
    for action, helptext in (("show", "one request in detail: REF"), ("search", "FILTERS: date:A..B lang: site: status: requester:"),
                             ("offer", "REF INTERPRETER (id or name)"), ("accept", "REF"), ("decline", "REF [reason]"),
                             ("cancel", "REF [reason]"), ("complete", "REF"), ("unfilled", "REF"),
                             ("comm", "REF MINUTES [note]: a billable communication")):
        ra = rsub.add_parser(action, help=helptext)
        ra.add_argument("args", nargs="*")
        if action in ("show", "search"):
            ra.add_argument("--json", action="store_true")
        ra.set_defaults(func=cmd_requests_action)
    st = sub.add_parser("status", help="queue depths, oldest waiting item, requests by status")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    sub.add_parser("check-config", help="validate the configuration: store, relay, IMAP, Telegram token, directory"
                   ).set_defaults(func=cmd_check_config)
    tp = sub.add_parser("templates", help="reply templates")
    tsub = tp.add_subparsers(dest="action", required=True)
    tv = tsub.add_parser("preview", help="render a template with sample data")
    tv.add_argument("name")
    tv.add_argument("--lang", choices=["fr", "en"], default="fr")
    tv.add_argument("--html", action="store_true")
    tv.set_defaults(func=cmd_templates_preview)
    pp = sub.add_parser("purge", help="erase raw messages and personal details past the retention period")
    pp.add_argument("--older-than", help="e.g. 730d, 104w, 24m, 2y (default: BIQ_RETENTION_DAYS)")
    pp.set_defaults(func=cmd_purge)
    rep = sub.add_parser("report", help="reports")
    repsub = rep.add_subparsers(dest="report", required=True)
    rb = repsub.add_parser("billing", help="billable hours per establishment for a month (rule 8)")
    rb.add_argument("--month", required=True, help="YYYY-MM")
    rb.add_argument("--csv", action="store_true", help="CSV instead of a table")
    rb.set_defaults(func=cmd_report_billing)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    for noisy in ("mail.log", "alembic", "aiosmtpd"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"biq-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"biq-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
