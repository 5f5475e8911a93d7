"""What the three entry points (train.py, evaluate.py, rectify.py) share at the Hydra edge.

Only code here and in the entry points turns config nodes into objects (`hydra.utils.instantiate`);
everything below takes plain typed arguments. A constructor's own `UserError` (a bad problem file, a missing
key, a suite that cannot be read) reaches the entry point as itself, not wrapped in Hydra's
InstantiationException, so it can be printed as one line (spot.errors.exit_with).
"""

from __future__ import annotations

from dataclasses import replace

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spot.errors import ConfigError, UserError, check, check_type
from spot.evaluate.suites import Suite
from spot.generation import Sampling


def build(node: DictConfig, key: str):
    """instantiate(node), with a user error inside the constructor passed through as itself and a wrong
    parameter name reported against `key`."""
    try:
        return instantiate(node, _partial_=True)()
    except TypeError as e:  # an override naming a parameter the builder does not have
        if "argument" not in str(e):
            raise
        raise ConfigError(f"{key}: {e}") from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise


# The counts of an eval config, here and in every suite's node: (key, least value); null keeps the default
EVAL_COUNTS = (("limit", 0), ("n_samples", 1), ("max_new_tokens", 1))


def check_eval_counts(eval_cfg: DictConfig) -> None:
    """eval.limit, eval.n_samples, eval.max_new_tokens and the same keys of each suite, checked before any file
    is read or model loaded: -1 would otherwise cut the last question silently, 0 samples divide by zero."""
    nodes = {"eval": eval_cfg, **{f"eval.suites.{k}": v for k, v in (eval_cfg.get("suites") or {}).items()}}
    for where, node in nodes.items():
        for name, least in EVAL_COUNTS:
            value = node.get(name)
            if value is not None:
                check_type(value, int, f"{where}.{name}")
                check(value >= least, f"{where}.{name}", f"must be >= {least} or null, got {value!r}")


def build_suites(eval_cfg: DictConfig) -> list[Suite]:
    """Every suite selected with eval= (one node per file of conf/eval/ under eval.suites), with eval.limit,
    eval.n_samples and eval.max_new_tokens applied to all of them."""
    from spot.evaluate.benchmarks import Offline
    from spot.evaluate.suite_files import adjust

    check_eval_counts(eval_cfg)
    suites: list[Suite] = []
    offline: list[Offline] = []  # every benchmark an offline machine lacks, named in one line (eval=paper)
    for name, node in (eval_cfg.get("suites") or {}).items():
        try:
            built = build(node, f"eval.suites.{name}")
        except Offline as e:
            offline.append(e)
            continue
        suites += [built] if isinstance(built, Suite) else list(built)
    if offline:
        raise Offline.together(offline)
    return adjust(suites, limit=eval_cfg.get("limit"), n_samples=eval_cfg.get("n_samples"),
                  max_new_tokens=eval_cfg.get("max_new_tokens"))


def engine_of(node: DictConfig):
    """The EngineSpec that generation= selects, checked now: a missing engine names its pip command before any
    model or data is loaded."""
    spec = build(node, "generation")
    if OmegaConf.is_config(spec.options):  # plain values from here on
        spec = replace(spec, options=OmegaConf.to_container(spec.options, resolve=True))
    spec.check()
    return spec


def sampling_of(node: DictConfig, key: str) -> Sampling:
    """A Sampling from the config node at `key`; an unknown or out-of-range setting is named by its key."""
    values = OmegaConf.to_container(node, resolve=True)
    unknown = sorted(set(values) - set(Sampling.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: not a sampling setting (known: "
                          f"{', '.join(Sampling.__dataclass_fields__)})")
    try:
        return Sampling(**values)
    except ConfigError as e:  # Sampling names its fields "sampling.<field>"
        raise ConfigError(f"{key}{str(e).removeprefix('sampling')}") from None


def describe_outputs(out_dir) -> str:
    """Where a run's results are, for the last lines an entry point prints: the files that exist."""
    from pathlib import Path

    out = Path(out_dir)
    names = {"metrics.json": "scores and run info", "samples.jsonl": "the trained model's completions",
             "base_samples.jsonl": "the base model's completions", "train_log.jsonl": "logged curves",
             "policy": "the trained policy (save_pretrained)", "adapter": "the LoRA adapters (peft)",
             "checkpoints": "Lightning checkpoints (ckpt_path=... resumes)", "pairs.jsonl": "rectified pairs",
             "rft.jsonl": "the policy's correct samples", "direct.jsonl": "the Oracle's direct solutions",
             "drops.jsonl": "what the filters dropped, and why", "report.json": "counts, drops and costs",
             "journal": "every completion or Oracle reply as it came (a rerun resumes from it)",
             "COMPLETE": "the output set above was written whole"}
    lines = [f"results in {out}/"] + [f"  {name:<18} {what}" for name, what in names.items() if (out / name).exists()]
    wandb_runs = sorted(out.glob("wandb/offline-run-*"))
    if wandb_runs:
        lines.append(f"  W&B (offline)      upload: wandb sync {wandb_runs[-1]}")
    return "\n".join(lines)
