"""The `biq-bot` command: one entry point for every operation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_parse(args: argparse.Namespace) -> int:
    """One JSON object per file, in order; a file that cannot be read still gets a line."""
    from parsers.directory import Directory
    from parsers.request import parse_email, parse_update

    directory = Directory.from_folder(args.data) if args.data else _default_directory()
    directory.build()
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            if path.suffix.lower() == ".json":
                parsed, _ = parse_update(directory, json.loads(path.read_text(encoding="utf-8")))
            else:
                parsed, _ = parse_email(directory, path.read_bytes())
            print(parsed.to_json(), flush=False)
        except (OSError, ValueError) as exc:
            print(json.dumps({"intent": "other", "ref": None, "language": "fr", "appointments": [],
                              "error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False))
            status = 1
    sys.stdout.flush()
    return status


def _default_directory():
    from parsers.directory import Directory
    from store.sample import SAMPLE_DIRECTORY
    return Directory.from_folder(SAMPLE_DIRECTORY)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="biq-bot", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("parse", help="print the structured request of each message file as JSON")
    sp.add_argument("--data", help="directory folder (installations.csv, interpreters.csv, languages.csv)")
    sp.add_argument("files", nargs="+")
    sp.set_defaults(func=cmd_parse)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
