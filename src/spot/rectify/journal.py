"""Crash-safe files: append-only journals for work done, atomic replacement for final outputs.

A journal is jsonl, one record a line. `append` hands the line to the kernel before it returns, so a record
survives kill -9 of this process the moment the call returns: a record that a rerun sees is work never done
(or paid for) again. Surviving a power cut needs fsync as well. With `group_commit=False` every append
fsyncs before it returns; with `group_commit=True` a background thread fsyncs whatever was appended since
its last fsync, back to back, so on a disk whose fsync takes ~5 ms (this one) the event loop of the Oracle
stage is never blocked and hundreds of records a second still reach the disk within one fsync's time.

A crash can leave at most the last line torn; opening the journal cuts it off, so the next append starts on
a clean line. Final files are written to a temporary file in the same directory, fsync'd, then renamed over
the target: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from spot.errors import UserError


class JournalError(UserError):
    """A journal damaged somewhere other than its last line: not something a crash can do."""


class Journal:
    """Append-only jsonl whose records survive kill -9 once `append` has returned."""

    def __init__(self, path: str | Path, group_commit: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = self._recover()
        self._file = self.path.open("a", encoding="utf-8")
        self._dirty, self._closing = threading.Event(), False
        self._syncer = None
        if group_commit:
            self._syncer = threading.Thread(target=self._sync_loop, daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        while not self._closing:
            self._dirty.wait()
            self._dirty.clear()
            os.fsync(self._file.fileno())

    def _recover(self) -> list[dict]:
        """Reads every complete record and truncates a torn tail (a last line cut short by a crash)."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records, good_end, start = [], 0, 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                break  # no newline: the write was cut short
            try:
                records.append(json.loads(data[start:end]))
            except json.JSONDecodeError:
                if data.find(b"\n", end + 1) >= 0:  # damage before the last line
                    lineno = data.count(b"\n", 0, start) + 1
                    raise JournalError(f"{self.path}:{lineno}: corrupt journal record; delete the file "
                                       "to redo its stage") from None
                break
            good_end = start = end + 1
        if good_end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        return records

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()  # in the kernel now: safe from kill -9
        if self._syncer is None:
            os.fsync(self._file.fileno())
        else:
            self._dirty.set()
        self.records.append(record)

    def close(self) -> None:
        if self._syncer is not None:
            self._closing = True
            self._dirty.set()
            self._syncer.join()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class JournalInUse(UserError):
    """Another live process holds this journal directory."""


@contextmanager
def journal_lock(directory: Path):
    """Holds `directory/lock` for the duration: a second run on the same journals stops with one line naming
    the holder, instead of paying for every call a second time and writing each key twice.

    An advisory flock, so the kernel releases it when the holder exits, however it exits (kill -9 included):
    a stale lock file never blocks a rerun.
    """
    import fcntl
    import socket

    path = Path(directory) / "lock"
    fh = path.open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise JournalInUse(f"{directory} is in use by {holder}; wait for that run to end, or use another "
                           "out_dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    fh.flush()
    try:
        yield
    finally:
        fh.close()
