"""Score a model on benchmark suites (avg@N), against its base model when it has one; write metrics.json.

    python evaluate.py                                            # toy base on the toy suites
    python evaluate.py model=outputs/<date>/<time>_bco            # a train.py run vs its base: deltas, KL
    python evaluate.py model=outputs/.../checkpoints/last.ckpt    # a Lightning checkpoint of a run
    python evaluate.py model=Qwen/Qwen3-8B model.dtype=bfloat16 eval=paper     # the paper's suites
    python evaluate.py model=<model> eval=[gsm8k,math500] sampling.temperature=0 limit=50

`model=` takes a conf/model/ name or anything loadable: a hub id, a directory, a run or a .ckpt. Outputs go to
outputs/eval/<date>/<time>/: samples.jsonl (and base_samples.jsonl), metrics.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

MODEL_CONFIGS = Path(__file__).resolve().parent / "conf" / "model"


def model_shorthand(argv: list[str]) -> list[str]:
    """`model=<id, path, run or .ckpt>` becomes `model.path=<it> model.dtype=auto`: Hydra would otherwise
    look for conf/model/<it>.yaml. Names of files in conf/model/ (model=toy, model=hf) stay group choices."""
    out, has_dtype = [], any(a.startswith("model.dtype=") for a in argv)
    for arg in argv:
        value = arg.removeprefix("model=")
        if arg.startswith("model=") and not (MODEL_CONFIGS / f"{value}.yaml").exists():
            out += [f"model.path={value}"] + ([] if has_dtype else ["model.dtype=auto"])
        else:
            out.append(arg)
    return out


def build_suites(node: DictConfig) -> list:
    """Every selected suite config, instantiated. A constructor's own error (a missing file, a bad row) comes
    out as itself rather than wrapped by Hydra, so it can be printed as one line."""
    from hydra.utils import instantiate

    from spot.evaluate.benchmarks import BenchmarkError
    from spot.evaluate.suites import Suite

    # train.py's eval=toy holds one _target_ for all its suites; the files in conf/eval/ each add one entry
    nodes = {"": node} if "_target_" in node else {f".{k}": node[k] for k in node}
    suites = []
    for key, n in nodes.items():
        try:
            built = instantiate(n, _partial_=True)()
        except TypeError as e:  # an override naming a parameter the builder does not have
            if "argument" not in str(e):
                raise
            raise BenchmarkError(f"eval.suites{key}: {e}") from None
        suites += [built] if isinstance(built, Suite) else list(built)
    return suites


def fail(error: Exception) -> None:
    """Bad input ends the run with one line on stderr and exit status 2, as train.py does."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    # Imports inside main: `--help` and config errors answer without loading torch.
    from hydra.core.hydra_config import HydraConfig

    from spot.evaluate.benchmarks import BenchmarkError, adjust

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:  # suites first: a missing benchmark file is reported before torch and the model load
        suites = adjust(build_suites(cfg.eval.suites), limit=cfg.limit, n_samples=cfg.n_samples,
                        max_new_tokens=cfg.max_new_tokens)
    except BenchmarkError as e:
        fail(e)

    from spot.evaluate.checkpoints import CheckpointError
    from spot.evaluate.forgetting import KLSettings
    from spot.evaluate.run import EvalPlan, evaluate_model, log_to_wandb
    from spot.generation import Sampling

    thinking = cfg.model.get("enable_thinking")
    plan = EvalPlan(model=cfg.model.path, base=cfg.base, dtype=cfg.model.dtype, seed=cfg.seed, device=cfg.device,
                    sampling=Sampling(**cfg.sampling, enable_thinking=thinking),
                    kl=KLSettings(**cfg.kl, enable_thinking=thinking) if cfg.kl else None, progress=cfg.progress)
    try:
        metrics = evaluate_model(plan, suites, out_dir)
    except (BenchmarkError, CheckpointError) as e:  # a scorer's missing dependency, a model that won't load
        fail(e)
    log_to_wandb(metrics, out_dir, config=OmegaConf.to_container(cfg, resolve=True),
                 **OmegaConf.to_container(cfg.wandb, resolve=True))
    print_summary(metrics, out_dir)
    return metrics["trained"]["groups"].get("in_domain")


def print_summary(metrics: dict, out_dir: Path) -> None:
    base = metrics.get("base", {}).get("suites", {})
    print(f"{'suite':<24} {'metric':>8} {'score':>7} {'base':>7}")
    for name, d in metrics["trained"]["details"].items():
        b = f"{100 * base[name]:7.1f}" if name in base else "      -"
        print(f"{name:<24} {d['metric']:>8} {100 * d['accuracy']:7.1f} {b}")
    if "kl" in metrics:
        print(f"KL(policy || base): {metrics['kl']['token']:.4f} per token, {metrics['kl']['sequence']:.3f} "
              "per sequence")
    print(f"wrote {out_dir / 'metrics.json'}")


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *model_shorthand(sys.argv[1:])]
    main()
