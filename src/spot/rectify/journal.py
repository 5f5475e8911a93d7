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

from spot.errors import DiskFull, UserError, space_checked


class JournalError(UserError):
    """A journal damaged somewhere other than its last line: not something a crash can do."""


class Journal:
    """Append-only jsonl whose records survive kill -9 once `append` has returned.

    A write or fsync that fails for want of space raises `DiskFull` naming the file, and the journal takes no
    more records (a later append raises it again): what was appended before is whole on disk, or cut back to
    its last whole line when the next run opens it.
    """

    def __init__(self, path: str | Path, group_commit: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = self._recover()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._dirty, self._closing = threading.Event(), False
        self._failure: DiskFull | None = None  # the first write or fsync that failed
        self._failure_raised = False  # a caller has seen it: close() does not raise it a second time
        self._syncer = None
        if group_commit:
            self._syncer = threading.Thread(target=self._sync_loop, daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        while not self._closing and self._failure is None:
            self._dirty.wait()
            self._dirty.clear()
            try:
                self._sync()
            except DiskFull as e:  # raised by the next append, or by close
                self._failure = e

    def _sync(self) -> None:
        with space_checked(self.path):
            os.fsync(self._fd)

    def _write(self, data: bytes) -> None:
        """Hands `data` to the kernel whole: os.write may take only part of it."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _raise_failure(self) -> None:
        if self._failure is not None:
            self._failure_raised = True
            raise DiskFull(str(self._failure))

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
        self._raise_failure()
        try:
            with space_checked(self.path):
                self._write((json.dumps(record, ensure_ascii=False) + "\n").encode())  # in the kernel now
                if self._syncer is None:
                    os.fsync(self._fd)
        except DiskFull as e:
            self._failure = e
            self._raise_failure()
        if self._syncer is not None:
            self._dirty.set()
        self.records.append(record)

    def close(self) -> None:
        """Makes every record durable and closes the file; raises a failure no append has raised yet."""
        if self._syncer is not None:
            self._closing = True
            self._dirty.set()
            self._syncer.join()
        try:
            if self._failure is None:
                self._sync()
        except DiskFull as e:
            self._failure = e
        finally:
            os.close(self._fd)
        if not self._failure_raised:
            self._raise_failure()


def close_all(journals: list[Journal]) -> None:
    """Closes every journal, then raises the first failure: one that failed must not leave the others open."""
    failures = []
    for journal in journals:
        try:
            journal.close()
        except DiskFull as e:
            failures.append(e)
    if failures:
        raise failures[0]


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
