"""The folder target of the outbox: each reply becomes one .eml file, on disk before it is
recorded sent.

A file is written under a temporary name and synced, and only then takes its final name; the
folder is synced after the renames, before the caller records the replies sent. So a crash
leaves either no final file (the reply is written again) or a complete one (never written
twice).

One `syncfs()` for a pass's files instead of an `fsync()` each was tried: less CPU in the sender
alone, but it flushes the whole file system, the SQLite store's pages included, and end to end
the bot was slower (bench/HISTORY.md, fifteenth session).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def _error(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, content: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())


def write_files(folder: Path, files: Sequence[tuple[str, bytes]]) -> list[str | None]:
    """Write each (name, content) into *folder*, durably; per file None, or the error that kept
    it from being written (the others are written all the same). A file that already exists
    was written before a crash and not recorded: it is left as it is."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [_error(exc)] * len(files)
    errors: list[str | None] = [None] * len(files)
    renamed = []
    for i, (name, content) in enumerate(files):
        final = folder / name
        if final.exists():
            continue
        tmp = folder / f".{name}.tmp"
        try:
            _write_durably(tmp, content)
            os.replace(tmp, final)
            renamed.append(i)
        except OSError as exc:
            errors[i] = _error(exc)
    if renamed:
        try:  # a folder's entries (the renames) reach the disk with an fsync of the folder
            _fsync_folder(folder)
        except OSError as exc:
            for i in renamed:
                errors[i] = _error(exc)
    return errors
