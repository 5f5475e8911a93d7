"""Score a model on benchmark suites (avg@N), against its base model when it has one; write metrics.json.

    python evaluate.py                                            # toy base on the toy suites
    python evaluate.py model=outputs/<date>/<time>_bco            # a train.py run vs its base: deltas, KL
    python evaluate.py model=Qwen/Qwen3-8B model.dtype=bfloat16 eval=paper     # the paper's suites
    python -m spot.evaluate.prepare eval=paper    # their files into data/benchmarks/, for machines without the hub
    python evaluate.py model=<model> "eval=[gsm8k,math500]" eval.limit=50
    python evaluate.py model=<model> generation=vllm eval=paper                # vLLM (conf/generation/)
    python evaluate.py completions=<file.jsonl> "eval=[gsm8k]"    # {"prompt": problem, "completion"} made elsewhere

`model=` takes a conf/model/ name or anything loadable: a hub id, a directory, a run or a .ckpt. A train.py
run is scored with the prompt format it was trained with (its model.problem_template and enable_thinking)
unless those are overridden here. The evaluation is `spot.evaluate_run.run(cfg, out_dir, overridden)`. Outputs
go to outputs/eval/<date>/<time>/ (hydra.run.dir=<dir> chooses): samples.jsonl (and base_samples.jsonl),
metrics.json, and journal/ with every completion as it arrived. An evaluation that stopped (a server that gave
up, a crash, kill -9) resumes when run again with the same hydra.run.dir: only the missing completions are
generated (spot.evaluate.resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

MODEL_CONFIGS = Path(__file__).resolve().parent / "conf" / "model"


def model_shorthand(argv: list[str]) -> list[str]:
    """`model=<id, path, run or .ckpt>` becomes `model=<config> model.path=<it> model.dtype=auto` (Hydra would
    otherwise look for conf/model/<it>.yaml). <config> is the conf/model/ file whose `path` is that model
    (`model=assets/toy-base` is scored as model=toy), else `hf`: model=hf's prompt format, as train.py trains (a
    train.py run is then scored with its own). Names of files in conf/model/ (model=toy) stay group choices."""
    out, has_dtype = [], any(a.startswith("model.dtype=") for a in argv)
    for arg in argv:
        value = arg.removeprefix("model=")
        if arg.startswith("model=") and not (MODEL_CONFIGS / f"{value}.yaml").exists():
            out += [f"model={config_of(value)}", f"model.path={value}"] + ([] if has_dtype else ["model.dtype=auto"])
        else:
            out.append(arg)
    return out


def config_of(model: str) -> str:
    """The conf/model/ config whose `path` names the same local model as `model`, else "hf"."""
    where = Path(model).expanduser()
    if where.exists():
        for file in sorted(MODEL_CONFIGS.glob("*.yaml")):
            node = OmegaConf.load(file)  # a model's own keys, or under model: in a _global_ one (model=smollm2)
            path = node.get("path", OmegaConf.select(node, "model.path"))
            if not isinstance(path, str) or path == "???":
                continue
            # a relative path in conf/model is relative to where one runs: from the repository root, or here
            if where.resolve() in {Path(path).expanduser().resolve(), (MODEL_CONFIGS.parents[1] / path).resolve()}:
                return file.stem
    return "hf"


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from spot.errors import UserError, exit_with
    from spot.evaluate_run import run

    hydra_cfg = HydraConfig.get()
    try:
        metrics = run(cfg, hydra_cfg.runtime.output_dir, hydra_cfg.overrides.task)
    except UserError as e:  # a missing benchmark file, a model that won't load, a value out of range
        exit_with(e)
    return (metrics.get("trained") or {}).get("groups", {}).get("in_domain")


if __name__ == "__main__":
    from spot.entry import main_of

    sys.argv = [sys.argv[0], *model_shorthand(sys.argv[1:])]
    main_of(main)  # Hydra's own errors (an unknown key or option) as one line, exit 2
