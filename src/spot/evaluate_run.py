"""evaluate.py's job as one plain function: a composed evaluate config in, metrics out (`run`).

evaluate.py composes the config (after turning `model=<path or id>` into a model config, `model_shorthand`) and
calls `run(cfg, out_dir, overridden)` with the run directory and the keys the command line set; nothing here
reads Hydra's runtime. Checks come first: a value out of range or a missing benchmark file is reported before
torch loads a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def run(cfg: DictConfig, out_dir: str | Path, overridden: Iterable[str] = ()) -> dict:
    """One evaluation of the composed evaluate config into `out_dir`; returns the metrics. `overridden` are the
    keys the command line set (Hydra's overrides.task, `key=value` or just `key`): a run's own prompt format is
    used unless model.enable_thinking or model.problem_template is among them."""
    from spot.cli import build_suites, engine_of, sampling_of
    from spot.threads import apply_threads, choose_threads

    # first: a value out of range or a missing benchmark file is reported before torch loads a model
    choose_threads(cfg.get("threads", "auto"))
    suites = build_suites(cfg.eval)
    sampling = sampling_of(cfg.eval.sampling, "eval.sampling")
    engine = engine_of(cfg.generation)
    print(apply_threads(cfg.get("threads", "auto")), flush=True)

    from spot.evaluate.checkpoints import resolve_source
    from spot.evaluate.evaluation import EvalPlan, evaluate_completions, evaluate_model, log_to_wandb
    from spot.evaluate.kl import KLSettings
    from spot.evaluate.table import describe_scoring
    from spot.gguf import prepare

    kl = KLSettings(**cfg.kl) if cfg.kl else None
    kl_prompts = kl_prompts_of(cfg.eval) if kl else None

    out_dir = Path(out_dir)
    if cfg.completions:  # generated elsewhere: score them, no model is loaded
        metrics = evaluate_completions(cfg.completions, suites, out_dir, sampling, cfg.seed)
        print_summary(metrics, out_dir, f"scored completions made elsewhere; {len(suites)} suites")
        return metrics

    prepare(cfg.model)  # a GGUF checkpoint (model=smollm2): its model directory, made once
    overridden = {o.split("=")[0].lstrip("+~") for o in overridden}
    fmt = {"enable_thinking": cfg.model.get("enable_thinking"), "problem_template": cfg.model.problem_template}
    trained_with = resolve_source(cfg.model.path).chat or {}  # a run's own prompt format
    fmt |= {k: v for k, v in trained_with.items() if f"model.{k}" not in overridden}
    plan = EvalPlan(model=cfg.model.path, base=cfg.base, dtype=cfg.model.dtype, seed=cfg.seed, device=cfg.device,
                    sampling=sampling, kl=kl, kl_prompts=kl_prompts, progress=cfg.eval.progress, **fmt)
    metrics = evaluate_model(plan, suites, out_dir, engine)
    log_to_wandb(metrics, out_dir, config=OmegaConf.to_container(cfg, resolve=True),
                 **OmegaConf.to_container(cfg.wandb, resolve=True))
    print_summary(metrics, out_dir, describe_scoring(sampling, suites))
    return metrics


def kl_prompts_of(eval_cfg: DictConfig) -> tuple[str, ...] | None:
    """The KL's own prompts (eval.kl_prompts, a _target_ giving raw prompts), checked before a model loads."""
    from spot.cli import build
    from spot.errors import ConfigError

    if not eval_cfg.get("kl_prompts"):
        return None
    prompts = build(eval_cfg.kl_prompts, "eval.kl_prompts")
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ConfigError("eval.kl_prompts: must give a non-empty list of non-empty prompt strings")
    return tuple(prompts)


def print_summary(metrics: dict, out_dir: Path, caption: str) -> None:
    from spot.cli import describe_outputs

    if "trained" not in metrics:
        print(metrics["note"])
        print(describe_outputs(out_dir))
        return
    print(caption)
    base = metrics.get("base", {}).get("suites", {})
    print(f"{'suite':<24} {'metric':>8} {'score':>7} {'base':>7}")
    for name, d in metrics["trained"]["details"].items():
        b = f"{100 * base[name]:7.1f}" if name in base else "      -"
        print(f"{name:<24} {d['metric']:>8} {100 * d['accuracy']:7.1f} {b}")
        for part, acc in d.get("parts", {}).items():  # a suite scored in parts (connect4): each part's mean
            print(f"  {name}/{part:<{21 - len(name)}} {d['metric']:>8} {100 * acc:7.1f}")
    if "kl" in metrics:
        print(f"KL(policy || base): {metrics['kl']['token']:.4f} per token, {metrics['kl']['sequence']:.3f} "
              f"per sequence, on {metrics['kl']['n_samples']} samples of {metrics['kl']['prompts']}")
    print(describe_outputs(out_dir))
