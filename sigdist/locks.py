"""Exclusive locks on the folders a run or a study writes, so that two processes never write
the same one: the second is told who holds it."""

from __future__ import annotations

import fcntl
import os
from typing import IO


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` says which."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def hold_lock(path: str, owner: str) -> IO[str]:
    """Take the exclusive lock of the file ``path`` (created) for as long as the returned file
    stays open (the process's lifetime, at most), writing ``owner`` into it; raises
    :class:`LockHeld` naming the holder when another process has it, OSError when the file
    cannot be opened."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LockHeld(path, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{owner} (pid {os.getpid()})")
    handle.flush()
    return handle
