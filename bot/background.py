"""Threads for work that can wait a little: delivering replies, checkpointing SQLite's log.

Under a burst the two cores are shared by the SMTP server, the intake's commits, the pipeline
worker and the sender. Receiving a message and processing it decide how soon each sender gets
its answer; a reply written to the outbox a few milliseconds later changes nothing for anyone.
So these threads run at a lower scheduling priority (Linux: a nice value per thread): they
still get the CPU whenever it is free, and a share of it when it is not (never starved). At
K = 8 the sender alone gave 174 msg/s against 164 (four interleaved pairs), with the checkpoint
172 / 161 / 172 against 153 / 148 / 155 (bench/HISTORY.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

BACKGROUND_NICE = 5  # scheduler weight 335 against 1024: a quarter of a contended core, all of a free one


def name_os_thread(name: str) -> None:
    """Linux: give the calling thread *name* (15 bytes at most) where `top -H` and `ps -L` show
    it; Python before 3.14 leaves every thread called "python"."""
    with contextlib.suppress(Exception):  # not Linux, or no C library to ask: names are cosmetic
        import ctypes
        ctypes.CDLL(None).prctl(15, name.encode()[:15])  # PR_SET_NAME


def _start_background(name: str) -> None:
    """Linux schedules threads one by one: this thread's nice value goes BACKGROUND_NICE above
    the process's (raising it needs no privilege)."""
    name_os_thread(name)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: run as usual
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + BACKGROUND_NICE))


def background_executor(name: str) -> ThreadPoolExecutor:
    """One thread, named *name*, at background priority."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=functools.partial(_start_background, name))
