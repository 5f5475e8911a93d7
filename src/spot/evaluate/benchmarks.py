"""Where a file-backed suite's rows come from: its local file, else its hub dataset, else one line saying what to do.

    path: data/benchmarks/math500.jsonl      # read when it exists (python -m spot.evaluate.prepare writes it)
    hub: HuggingFaceH4/MATH-500              # else loaded through `datasets`, which caches it (HF_HOME)
    subset: null
    split: test

So `python evaluate.py model=... eval=paper` works on a fresh machine that reaches the hub, and a machine that
does not (HF_HUB_OFFLINE=1, no network) is told in one line which file to put where and the command that
writes it. A gated dataset (GPQA) says how to accept its terms. `hub` may also be a local directory that
`datasets.load_dataset` reads (a copy of the hub repository's files): the tests load a fake one that way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spot.errors import DataError, first_line
from spot.hub import HubUnreachable, check_reachable, gated
from spot.rows import is_local, iter_rows

PREPARE = "python -m spot.evaluate.prepare"


def prepare_command(suite: str) -> str:
    return f'{PREPARE} "eval=[{suite}]"'


def benchmark_rows(suite: str, path: str, hub: str | None = None, split: str = "test",
                   subset: str | None = None) -> Iterator[tuple[str, dict]]:
    """(where, row) from `path` when it exists or is itself a hub id, else from the hub dataset `hub`."""
    key = f"eval.suites.{suite}"
    if not hub or not is_local(path) or Path(path).expanduser().exists():
        return iter_rows(path, key=f"{key}.path", split=split, subset=subset)
    return hub_rows(suite, hub, subset, split, missing=path)


def hub_rows(suite: str, hub: str, subset: str | None, split: str, missing: str | None = None
             ) -> Iterator[tuple[str, dict]]:
    """The rows of a hub dataset (or a local dataset directory) through `datasets.load_dataset`, cached by it.
    `missing` is the local file that was looked for first, named in the offline message."""
    ds = load_hub(suite, hub, subset, split, missing)
    where = f"{hub}" + (f"[{subset}]" if subset else "") + f"[{split}]"
    return ((f"{where}:row {i + 1}", row) for i, row in enumerate(ds))


def load_hub(suite: str, hub: str, subset: str | None, split: str, missing: str | None = None):
    import datasets

    key = f"eval.suites.{suite}.hub"
    if not is_local(hub):  # one quick look-up before datasets retries an unreachable hub for half a minute
        try:
            check_reachable(hub, key, repo_type="dataset", probe_file="README.md")
        except HubUnreachable:
            raise offline(suite, hub, missing, "huggingface.co cannot be reached") from None
    try:
        return datasets.load_dataset(hub, subset, split=split)
    except ConnectionError as e:  # offline (HF_HUB_OFFLINE=1) and not in the cache, or the network went away
        raise offline(suite, hub, missing, first_line(e, 200)) from None
    except Exception as e:  # gated, an unknown subset or split: the library's first line says which
        if "gated" in str(e).lower():
            raise gated(key, hub, "dataset") from None
        where = (f" subset {subset}," if subset else "") + f" split {split}"
        raise DataError(f"{key}={hub}: cannot load dataset ({where.strip()}): {first_line(e)}") from None


class Offline(DataError):
    """A suite whose file is missing and whose hub dataset cannot be had here; `together` merges several into
    the one line an offline eval=paper prints."""

    def __init__(self, suite: str, hub: str, missing: str | None, why: str):
        self.suite, self.hub, self.missing, self.why = suite, hub, missing, why
        what = f"eval.suites.{suite}.path={missing} does not exist and " if missing else ""
        where = f"copy it to {missing}" if missing else "copy the file here"
        super().__init__(f"{what}eval.suites.{suite}.hub={hub} cannot be loaded here ({why}); write the file where "
                         f"the hub is reachable with `{prepare_command(suite)}` and {where}")

    @staticmethod
    def together(errors: list[Offline]) -> DataError:
        if len(errors) == 1:
            return errors[0]
        files = ", ".join(f"eval.suites.{e.suite}.path={e.missing}" if e.missing else f"eval.suites.{e.suite}"
                          for e in errors)
        names = ",".join(e.suite for e in errors)
        return DataError(f"{len(errors)} benchmark files are missing: {files}; the hub cannot be reached "
                         f"({errors[0].why}), so write them where it is with `{PREPARE} \"eval=[{names}]\"` and "
                         "copy them to those paths")


def offline(suite: str, hub: str, missing: str | None, why: str) -> Offline:
    """The one line for a machine without the hub: which file to put where, and the command that writes it."""
    return Offline(suite, hub, missing, why)
