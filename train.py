"""Post-train a policy with SPoT or a baseline, evaluate it against its base, write metrics.json.

    python train.py                                  # toy world, loss=bco, CPU (needs `python rectify.py` first)
    python train.py loss=dpo loss.beta=0.05
    python train.py -m loss=bco,dpo,bce loss.beta=0.05,0.1
    python train.py -m experiment=toy_table          # Base/SFT/RFT/SFT+/DPO/BCE/BCO at toy scale
    python train.py trainer=deepspeed_zero2 model=hf model.path=Qwen/Qwen3-8B data=rectified_4k \
        speed.gradient_checkpointing=true           # 8 GPUs; multi-node commands: benchmarks/README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    # Imports inside main: `python train.py --help` and config errors answer without loading torch.
    import lightning as L
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from spot.data import DataError, PairDataModule
    from spot.experiment import StepLog, base_cache_key, fit_and_evaluate
    from spot.generation import Sampling
    from spot.losses import RewardShift
    from spot.models import ModelLoadError, load_model, load_tokenizer
    from spot.module import OptimConfig, SPoTModule, loss_needs
    from spot.refcache import ReferenceLogps

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    try:
        tokenizer = load_tokenizer(cfg.model.path)
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    loss_fn = instantiate(cfg.loss)
    needs_reference, needs_pairs, needs_shift = loss_needs(loss_fn)
    data_cfg = OmegaConf.to_container(cfg.data)
    datamodule = PairDataModule(tokenizer=tokenizer, pairs=needs_pairs, seed=cfg.seed,
                                enable_thinking=cfg.model.enable_thinking, layout=cfg.speed.layout,
                                group_by_length=cfg.speed.group_by_length, **data_cfg)
    try:
        datamodule.setup("fit")
    except (DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    policy = load_model(cfg.model.path, cfg.model.dtype)
    if cfg.speed.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # Precomputed: the policy, still at its initial weights, scores the reference log-probs before training
    # (spot.refcache), so the reference model is never loaded.
    precompute = needs_reference and cfg.speed.precompute_reference
    reference = load_model(cfg.model.path, cfg.model.dtype) if needs_reference and not precompute else None
    module = SPoTModule(
        policy, loss_fn, reference=reference,
        reward_shift=RewardShift(**cfg.reward_shift) if needs_shift else None,
        optim=OptimConfig(**{**cfg.optim, "betas": tuple(cfg.optim.betas)}), precomputed_reference=precompute,
    )

    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in cfg.trainer.get("callbacks") or []]
    callbacks += [instantiate(c) for c in cfg.eval.get("callbacks") or []]  # e.g. eval=toy_curves
    callbacks.append(StepLog(out_dir / "train_log.jsonl"))
    if precompute:
        callbacks.append(ReferenceLogps(cfg.speed.reference_cache_dir))
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(out_dir))
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    suites = instantiate(cfg.eval.suites)
    sampling = Sampling(**cfg.eval.sampling)
    key = base_cache_key(cfg.model.path, suites, sampling, cfg.seed) if cfg.eval.cache_base else None
    run_info = {"method": cfg.method_name, "loss": HydraConfig.get().runtime.choices.loss,
                "beta": cfg.loss.get("beta"), "data": cfg.data.path, "model": cfg.model.path,
                "lr": cfg.optim.lr, "seed": cfg.seed, "reward_shift": cfg.reward_shift.mode,
                "experiment": cfg.experiment_name, "gamma": cfg.get("gamma"), "n_pairs": cfg.get("n_pairs")}
    metrics = fit_and_evaluate(
        module, datamodule, trainer, tokenizer, suites, sampling, out_dir, run_info,
        base_cache=Path(".cache/spot/base_eval") / f"{key}.json" if key else None,
        ckpt_path=cfg.ckpt_path, seed=cfg.seed, save_policy=cfg.save_policy,
    )
    if logger and hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()
    return metrics.get("trained", {}).get("groups", {}).get("in_domain")


if __name__ == "__main__":
    main()
