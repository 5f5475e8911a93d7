"""Score a model on benchmark suites (avg@N), against its base model when it has one; write metrics.json.

    python evaluate.py                                            # toy base on the toy suites
    python evaluate.py model=outputs/<date>/<time>_bco            # a train.py run vs its base: deltas, KL
    python evaluate.py model=outputs/.../checkpoints/last.ckpt    # a Lightning checkpoint of a run
    python evaluate.py model=Qwen/Qwen3-8B model.dtype=bfloat16 eval=paper     # the paper's suites
    python evaluate.py model=<model> "eval=[gsm8k,math500]" eval.limit=50
    python evaluate.py model=<model> generation=vllm eval=paper                # vLLM (conf/generation/)
    python evaluate.py completions=<file.jsonl> "eval=[gsm8k]"    # {"prompt": problem, "completion"} made elsewhere

`model=` takes a conf/model/ name or anything loadable: a hub id, a directory, a run or a .ckpt. A train.py
run is scored with the prompt format it was trained with (its model.problem_template and enable_thinking)
unless those are overridden here. Outputs go to outputs/eval/<date>/<time>/ (hydra.run.dir=<dir> chooses):
samples.jsonl (and base_samples.jsonl), metrics.json, and journal/ with every completion as it arrived. An
evaluation that stopped (a server that gave up, a crash, kill -9) resumes when run again with the same
hydra.run.dir: only the missing completions are generated (spot.evaluate.resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

from spot.threads import quiet_idle_threads

quiet_idle_threads()  # before torch is imported

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

MODEL_CONFIGS = Path(__file__).resolve().parent / "conf" / "model"


def model_shorthand(argv: list[str]) -> list[str]:
    """`model=<id, path, run or .ckpt>` becomes `model=<config> model.path=<it> model.dtype=auto` (Hydra would
    otherwise look for conf/model/<it>.yaml). <config> is the conf/model/ file whose `path` is that model
    (`model=assets/toy-base` is scored as model=toy), else `hf`: a hub id or a directory gets a real model's
    prompt format (the boxed-answer template, Qwen3's non-thinking mode), the one train.py trains model=hf with.
    A train.py run is then scored with the format it was trained with (`run`). Names of files in conf/model/
    (model=toy, model=smollm2) stay group choices."""
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


def run(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

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

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.completions:  # generated elsewhere: score them, no model is loaded
        metrics = evaluate_completions(cfg.completions, suites, out_dir, sampling, cfg.seed)
        print_summary(metrics, out_dir, f"scored completions made elsewhere; {len(suites)} suites")
        return metrics

    prepare(cfg.model)  # a GGUF checkpoint (model=smollm2): its model directory, made once
    overridden = {o.split("=")[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
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
    if "kl" in metrics:
        print(f"KL(policy || base): {metrics['kl']['token']:.4f} per token, {metrics['kl']['sequence']:.3f} "
              f"per sequence, on {metrics['kl']['n_samples']} samples of {metrics['kl']['prompts']}")
    print(describe_outputs(out_dir))


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from spot.errors import UserError, exit_with

    try:
        metrics = run(cfg)
    except UserError as e:  # a missing benchmark file, a model that won't load, a value out of range
        exit_with(e)
    return (metrics.get("trained") or {}).get("groups", {}).get("in_domain")


if __name__ == "__main__":
    from spot.entry import main_of

    sys.argv = [sys.argv[0], *model_shorthand(sys.argv[1:])]
    main_of(main)  # Hydra's own errors (an unknown key or option) as one line, exit 2
