"""Rows on disk: the one reader for every file of problems, pairs or benchmark items, and the atomic writers.

    for where, row in iter_rows("data/toy/pairs.jsonl"): ...     # where = "data/toy/pairs.jsonl:12"

Accepts jsonl (one object a line), a .json array of objects, parquet, a directory saved by `datasets`
(`save_to_disk`) or a hub dataset id. `where` is `file:line` for jsonl, `file:item N` for a JSON array and
`file:row N` otherwise, so that every error about a row names the place to fix it. Everything the reader
cannot use (a missing file, bad JSON, undecodable bytes, a non-object row) raises `DataError`.
`write_atomic` / `write_jsonl` / `atomic_output` replace a file in one rename after its data is on disk, and
`atomic_directory` a whole directory (a saved model, a DeepSpeed checkpoint), so a reader (or a crash) never sees
half of one; a full disk stops them with one line naming the file (spot.errors.DiskFull).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spot.errors import DataError, first_line, space_checked

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def is_local(path: str) -> bool:
    """A path that names a local file or directory (existing or meant to), not a hub id."""
    p = Path(path).expanduser()
    return p.exists() or p.suffix in LOCAL_SUFFIXES or path.startswith((".", "/", "~"))


def check_exists(path: str, key: str, hint: str = "") -> None:
    """A local path (by its look: spot.rows.is_local) that does not exist stops here, with `hint` (e.g. the
    command that makes the file), before anything is loaded; a hub id passes."""
    if is_local(path) and not Path(path).expanduser().exists():
        raise DataError(f"{key}={path} does not exist" + (f"; create it with: {hint}" if hint else ""))


def iter_rows(path: str, key: str = "path", split: str = "train", subset: str | None = None
              ) -> Iterator[tuple[str, dict]]:
    """(where, row) for every row of `path`. `key` is the config key that named the path, for the message."""
    p = Path(path).expanduser()
    if is_local(path):
        if not p.exists():
            raise DataError(f"{key}={path} does not exist")
        if p.suffix == ".jsonl":
            yield from _jsonl_rows(path, p)
        elif p.suffix == ".json":
            yield from _json_array_rows(path, p)
        elif p.suffix == ".parquet":
            import pyarrow.parquet as pq

            for i, row in enumerate(pq.read_table(p).to_pylist()):
                yield f"{path}:row {i + 1}", row
        else:
            import datasets

            for i, row in enumerate(datasets.load_from_disk(str(p))):
                yield f"{path}:row {i + 1}", row
        return
    import datasets

    from spot.hub import check_reachable

    check_reachable(path, key, repo_type="dataset", probe_file="README.md")
    try:
        ds = datasets.load_dataset(path, subset, split=split)
    except Exception as e:  # offline, unknown id, wrong split: the library's first line says which
        raise DataError(f"{key}={path}: cannot load dataset (split {split}): {first_line(e)}") from None
    for i, row in enumerate(ds):
        yield f"{path}[{split}]:row {i + 1}", row


def text_field(where: str, key: str, value) -> str:
    """A row's field that must be non-empty text; `where` is the row's file:line. One check for pair files
    (spot.data) and problem files (spot.rectify.problems), so both say the same thing about the same mistake."""
    if value is None:
        raise DataError(f"{where}: missing field '{key}'")
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field '{key}' is empty")
    return value


def _jsonl_rows(path: str, p: Path) -> Iterator[tuple[str, dict]]:
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield f"{path}:{lineno}", row


def _json_array_rows(path: str, p: Path) -> Iterator[tuple[str, dict]]:
    try:
        rows = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: expected a JSON array of objects (or use jsonl)")
    for i, row in enumerate(rows):
        yield f"{path}:item {i + 1}", row


@contextmanager
def atomic_output(path: str | Path, mode: str = "w"):
    """A file object that becomes `path` in one rename once everything written to it is on disk.

    It is a temporary file beside the target (same directory, so the same file system: the rename is atomic
    and nothing is copied), fsync'd, renamed over `path`, and the directory fsync'd so the rename survives a
    power cut. If the body raises (a full disk, an interrupt), the temporary file is removed and `path` keeps
    what it held before. A kill -9 can leave a `.<name>.tmp-<pid>` file, never a partial `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with space_checked(path), tmp.open(mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: str | Path) -> None:
    """Makes the renames and removals in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, text: str) -> None:
    """Replaces `path` with `text` in one rename, after the data is on disk."""
    with atomic_output(path) as f:
        f.write(text)


@contextmanager
def atomic_directory(target: str | Path):
    """A staging directory that replaces `target` as a whole once the body has written it.

    The body writes into `staging_directory(target)` (beside it); then `commit_directory` swaps it in. If the
    body raises, the staging directory is removed and `target` is untouched.
    """
    staging = staging_directory(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_directory(target)


def staging_directory(target: str | Path) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}.tmp")


def commit_directory(target: str | Path) -> None:
    """Swaps the finished staging directory in for `target`: its files are fsync'd and a COMPLETE marker
    written; then `target` (if any) is renamed aside to `.<name>.old`, the staging directory renamed to
    `target`, and the old copy removed. Between the two renames `target` is briefly absent, but both copies are
    whole on disk and `recover_directory` puts the right one back."""
    target = Path(target)
    staging, old = staging_directory(target), target.with_name(f".{target.name}.old")
    for f in staging.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:  # fsync needs no write access
                os.fsync(fh.fileno())
    write_atomic(staging / COMPLETE, "")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)  # a stale copy from an earlier crash
        os.replace(target, old)
    os.replace(staging, target)
    fsync_directory(target.parent)
    shutil.rmtree(old, ignore_errors=True)


COMPLETE = "COMPLETE"


def recover_directory(target: str | Path) -> None:
    """After a crash between `commit_directory`'s two renames: puts the whole copy back under `target` (the
    new one if its COMPLETE marker was written, else the old one)."""
    target = Path(target)
    staging, old = staging_directory(target), target.with_name(f".{target.name}.old")
    if target.exists():
        return
    if (staging / COMPLETE).exists():
        os.replace(staging, target)
    elif old.exists():
        os.replace(old, target)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    write_atomic(path, jsonl_text(rows))


def jsonl_text(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def replace_output_set(directory: str | Path, files: dict[str, str], names: Iterable[str],
                       marker: str = "COMPLETE") -> None:
    """Writes `files` ({name: text}) into `directory` as one set that replaces the previous one.

    The marker is removed first, then each file is replaced atomically, then the set's other `names` that this run
    did not write are removed (a rerun with direct=false leaves no direct.jsonl from an earlier run), then
    temp files that a killed writer left behind, and the marker is written last, listing the files. A reader
    that finds no marker is looking at a set being written, or one whose writer died. The caller must be the
    only writer (spot.rectify.journal.journal_lock).
    """
    directory = Path(directory)
    (directory / marker).unlink(missing_ok=True)
    for name, text in files.items():
        write_atomic(directory / name, text)
    for name in set(names) - set(files):
        (directory / name).unlink(missing_ok=True)
    for tmp in directory.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)
    write_atomic(directory / marker, json.dumps(sorted(files), indent=1) + "\n")
