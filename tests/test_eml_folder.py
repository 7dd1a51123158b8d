"""The outbox's folder target: every reply a complete file, durably, each failure its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.eml_folder import write_files


@pytest.fixture
def synced(monkeypatch) -> list[int]:
    """The descriptors fsync() was called on."""
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


def test_every_file_is_written_whole_and_no_temporary_file_is_left(tmp_path: Path, synced):
    files = [(f"{n:08d}-submitted.eml", f"Subject: {n}\r\n\r\n".encode() + b"x" * n) for n in range(1, 21)]
    assert write_files(tmp_path / "out", files) == [None] * 20
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [name for name, _ in files]
    assert all((tmp_path / "out" / name).read_bytes() == content for name, content in files)
    assert len(synced) == 21  # each file, then the folder's entries (the renames)


def test_a_file_written_before_a_crash_is_not_written_again(tmp_path: Path, synced):
    (tmp_path / "00000001-submitted.eml").write_bytes(b"first")
    result = write_files(tmp_path, [("00000001-submitted.eml", b"second"), ("00000002-submitted.eml", b"new")])
    assert result == [None, None]
    assert (tmp_path / "00000001-submitted.eml").read_bytes() == b"first"
    assert (tmp_path / "00000002-submitted.eml").read_bytes() == b"new"


def test_one_file_that_cannot_be_written_fails_alone(tmp_path: Path, synced):
    result = write_files(tmp_path, [("00000001-submitted.eml", b"a"), ("missing/00000002-submitted.eml", b"b"),
                                    ("00000003-submitted.eml", b"c")])
    assert result[0] is None and result[2] is None
    assert result[1] is not None and result[1].startswith("FileNotFoundError")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000001-submitted.eml", "00000003-submitted.eml"]


def test_a_folder_that_cannot_be_made_fails_every_file(tmp_path: Path):
    (tmp_path / "blocked").write_bytes(b"a file where the folder should be")
    result = write_files(tmp_path / "blocked" / "out", [("1.eml", b"a"), ("2.eml", b"b")])
    assert len(result) == 2 and all(r is not None and r.startswith(("FileExistsError", "NotADirectoryError"))
                                    for r in result)
