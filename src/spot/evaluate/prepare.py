"""Writes the selected suites' benchmark files once, from their hub datasets, for machines without the hub.

    python -m spot.evaluate.prepare                                   # eval=paper: data/benchmarks/<name>.jsonl
    python -m spot.evaluate.prepare "eval=[math500,gpqa_diamond]" benchmarks_dir=/shared/benchmarks
    python -m spot.evaluate.prepare eval=paper --force                # replace files that are already there

Arguments are evaluate.py's overrides: the suites and paths are those evaluate.py would use, so the files land
where it reads them first (each suite's `path`). Every row is kept as the hub has it, one JSON object a line;
a file is replaced atomically. Suites without a `hub` (Connect4, generated from its seed; the toy and arith
worlds) need no file and are skipped. GPQA-Diamond is gated: accept its terms on huggingface.co and
`hf auth login` first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[3] / "conf"  # the repository's conf/, as evaluate.py's


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from spot.errors import ConfigError

    if not CONF.is_dir():
        raise ConfigError(f"no conf/ directory at {CONF}: run from a clone of the repository")
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(config_name="evaluate", overrides=overrides)
    except Exception as e:  # an unknown suite or a malformed override: Hydra's first line names it
        from spot.errors import first_line

        raise ConfigError(f"cannot compose {' '.join(overrides)}: {first_line(e)}") from None


def prepare(overrides: list[str], force: bool = False, say=print) -> list[Path]:
    """Writes each selected suite's file from its hub dataset; returns the files written."""
    from spot.evaluate.benchmarks import load_hub
    from spot.rows import write_atomic

    cfg = compose(overrides)
    written = []
    for name, node in (cfg.eval.get("suites") or {}).items():
        hub, path = node.get("hub"), node.get("path")
        if not hub or not path:
            say(f"{name}: no hub dataset in its config (generated or local only); nothing to write")
            continue
        if Path(path).exists() and not force:
            say(f"{name}: {path} is already there (--force replaces it)")
            continue
        ds = load_hub(name, hub, node.get("subset"), node.get("split") or "test", missing=path)
        # default=str: a column the JSON encoder does not know (a date) is kept as its text
        write_atomic(path, "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in ds))
        say(f"{name}: {len(ds)} rows of {hub}" + (f" [{node.subset}]" if node.get("subset") else "")
            + f" [{node.get('split')}] -> {path}")
        written.append(Path(path))
    return written


def main(argv: list[str] | None = None) -> None:
    from spot.errors import UserError, exit_with

    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    force = "--force" in args
    overrides = [a for a in args if a != "--force"]
    if not any(o.startswith("eval=") for o in overrides):
        overrides.insert(0, "eval=paper")
    try:
        prepare(overrides, force=force)
    except UserError as e:
        exit_with(e)


if __name__ == "__main__":
    main()
