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

from spot.errors import DataError, UserError, first_line
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
    if not is_local(hub):
        try:
            check_hub(hub, key)
        except Unreachable as e:
            raise offline(suite, hub, missing, str(e)) from None
    try:
        return datasets.load_dataset(hub, subset, split=split)
    except ConnectionError as e:  # offline (HF_HUB_OFFLINE=1) and not in the cache, or the network went away
        raise offline(suite, hub, missing, first_line(e, 200)) from None
    except Exception as e:  # gated, an unknown subset or split: the library's first line says which
        if "gated" in str(e).lower():
            raise gated(key, hub) from None
        where = (f" subset {subset}," if subset else "") + f" split {split}"
        raise DataError(f"{key}={hub}: cannot load dataset ({where.strip()}): {first_line(e)}") from None


class Unreachable(Exception):
    pass


def check_hub(hub: str, key: str) -> None:
    """One quick look-up before `datasets` retries an unreachable hub for half a minute: gated and unknown ids
    stop here with their own line, no network raises Unreachable (a cached copy still loads then)."""
    import huggingface_hub as hf
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if hf.constants.HF_HUB_OFFLINE:
        return  # datasets reads its cache, or raises ConnectionError at once
    try:
        hf.HfApi().repo_info(hub, repo_type="dataset", timeout=10)
    except GatedRepoError:
        raise gated(key, hub) from None
    except RepositoryNotFoundError:
        raise DataError(f"{key}={hub}: no such dataset on the Hugging Face hub (or it is private: hf auth login)"
                        ) from None
    except HfHubHTTPError as e:
        raise DataError(f"{key}={hub}: the hub answered {first_line(e, 200)}") from None
    except Exception as e:  # no network: fine when datasets has it cached
        if not isinstance(hf.try_to_load_from_cache(hub, "README.md", repo_type="dataset"), str):
            raise Unreachable(f"huggingface.co cannot be reached ({first_line(e, 150)})") from None


def gated(key: str, hub: str) -> UserError:
    return DataError(f"{key}={hub} is gated: accept its terms at https://huggingface.co/datasets/{hub} (logged "
                     "in), then log in here with `hf auth login` (or set HF_TOKEN)")


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
