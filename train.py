"""Post-train a policy with SPoT or a baseline, evaluate it against its base, write metrics.json.

    python train.py                                  # toy world, loss=bco, CPU (needs `python rectify.py` first)
    python train.py loss=dpo loss.beta=0.05
    python train.py -m loss=bco,dpo,bce loss.beta=0.05,0.1
    python train.py -m experiment=toy_table          # Base/SFT/RFT/SFT+/DPO/BCE/BCO at toy scale
    python train.py model=hf model.path=<model> data=rectified_4k data.path=<pairs> "eval=[gsm8k]"
    python train.py trainer=deepspeed_zero2 model=hf model.path=Qwen/Qwen3-8B data=rectified_4k \
        speed.gradient_checkpointing=true           # 8 GPUs; multi-node commands: benchmarks/README.md
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf


def run(cfg: DictConfig) -> dict:
    # Imports inside, the light ones first: `python train.py --help` answers without torch, and a bad value
    # stops in a second or two, before Lightning and transformers are imported (several seconds on 2 cores).
    from hydra.core.hydra_config import HydraConfig

    from spot.cli import build, build_suites, engine_of, sampling_of
    from spot.gguf import prepare
    from spot.hub import check_local_model
    from spot.lora import LoraSpec
    from spot.losses import RewardShift
    from spot.optim import OptimConfig
    from spot.preflight import (
        check_attention,
        check_hardware,
        check_trainer,
        checkpoint_cadence,
        is_deepspeed,
        load_dtype,
    )
    from spot.rows import check_exists

    # typed settings first: a wrong value stops here, before a model or a data file is read
    objective = build(cfg.loss, "loss")
    optim = OptimConfig(**{**cfg.optim, "betas": tuple(cfg.optim.betas)})
    shift = RewardShift(**cfg.reward_shift) if objective.needs_shift else None
    sampling = sampling_of(cfg.eval.sampling, "eval.sampling")
    suites = build_suites(cfg.eval)
    engine = engine_of(cfg.generation)
    lora = LoraSpec(**OmegaConf.to_container(cfg.model.lora, resolve=True)) if cfg.model.get("lora") else LoraSpec()
    check_trainer(OmegaConf.to_container(cfg.trainer, resolve=True))
    # then what the hardware and the precision allow
    strategy = cfg.trainer.get("strategy")
    check_hardware(HydraConfig.get().runtime.choices.get("trainer"), cfg.trainer.accelerator, strategy)
    weights_dtype = load_dtype(cfg.model.dtype, cfg.trainer.precision, is_deepspeed(strategy), lora.enabled)
    check_attention(cfg.model.get("attn_implementation"))
    prepare(cfg.model)  # a GGUF checkpoint (model=smollm2): its model directory, made once
    check_local_model(cfg.model.path)
    check_exists(cfg.data.path, "data.path", cfg.data.get("make_command", ""))
    mid_epoch = checkpoint_cadence(**cfg.checkpoint) if cfg.get("checkpoint") else None
    # With LoRA the reference is the base with the adapters off; else precomputed (spot.refcache), or live.
    precompute = objective.needs_reference and cfg.speed.precompute_reference and not lora.enabled
    live_reference = objective.needs_reference and not precompute and not lora.enabled

    import lightning as L
    from hydra.utils import instantiate

    from spot.chat import ChatFormat
    from spot.checkpointing import AtomicCheckpointIO, SaveOnSignal
    from spot.data import PairDataModule
    from spot.models import PolicySaver, load_config, load_model, load_tokenizer, weights_key
    from spot.module import SPoTModule
    from spot.preflight import check_model_fits
    from spot.progress import on_terminal
    from spot.refcache import ReferenceLogps
    from spot.throughput import Throughput
    from spot.training import RunScoring, StepLog, TrainProgress, base_cache_key, train_and_evaluate

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    tokenizer = load_tokenizer(cfg.model.path)
    model_config = load_config(cfg.model.path)
    strategy_spec = OmegaConf.to_container(strategy, resolve=True) if hasattr(strategy, "keys") else strategy
    check_model_fits(cfg.model.path, model_config, lora, weights_dtype, cfg.trainer.accelerator,
                     cfg.trainer.devices, strategy_spec, live_reference)
    chat = ChatFormat(tokenizer, cfg.model.enable_thinking, cfg.model.problem_template)
    datamodule = PairDataModule(chat=chat, pairs=objective.needs_pairs, seed=cfg.seed, layout=cfg.speed.layout,
                                group_by_length=cfg.speed.group_by_length,
                                **OmegaConf.to_container(cfg.data, resolve=True))
    datamodule.setup("fit")
    attn = cfg.model.get("attn_implementation")
    policy = load_model(cfg.model.path, weights_dtype, attn)
    if lora.enabled:
        policy = lora.apply(policy)
    if cfg.speed.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # Precomputed: the policy, still at its initial weights, scores the reference log-probs before training
    # (spot.refcache), so the reference model is never loaded.
    reference = load_model(cfg.model.path, cfg.model.dtype, attn) if live_reference else None
    module = SPoTModule(policy, objective, reference=reference, reward_shift=shift, optim=optim,
                        precomputed_reference=precompute)

    scored_by = {**engine.settings(), "weights": weights_dtype, "trainer.precision": str(cfg.trainer.precision)}
    key = base_cache_key(cfg.model.path, suites, sampling, chat, cfg.seed, model_config, scored_by) \
        if cfg.eval.cache_base else None
    saver = PolicySaver(out_dir / "policy", cfg.model.dtype, cfg.model.get("max_shard_size", "5GB"), lora.merge) \
        if cfg.save_policy else None
    scoring = RunScoring(chat, suites, sampling, seed=cfg.seed, progress=cfg.eval.progress,
                         base_cache=Path(".cache/spot/base_eval") / f"{key}.json" if key else None,
                         save=saver, engine=engine, base_model=cfg.model.path)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in cfg.trainer.get("callbacks") or []]
    callbacks += [instantiate(c) for c in cfg.eval.get("callbacks") or []]  # e.g. eval=toy_curves
    callbacks += [Throughput(), StepLog(out_dir / "train_log.jsonl"), TrainProgress(),  # Throughput first
                  SaveOnSignal(out_dir / "checkpoints" / "last.ckpt"), scoring]  # Ctrl-C/SIGTERM: save, stop
    if mid_epoch is not None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0,
                                         enable_version_counter=False, **mid_epoch))  # the same last.ckpt
    if precompute:
        callbacks.append(ReferenceLogps(cfg.speed.reference_cache_dir,
                                        model_key=weights_key(cfg.model.path, model_config)))
    # no terminal (nohup, SLURM, CI): Lightning's bar would print once at the end; TrainProgress prints lines
    bar = {} if on_terminal() else {"enable_progress_bar": False}
    # checkpoints written beside their target and renamed in (spot.checkpointing); DeepSpeed's directories by its
    # strategy (trainer=deepspeed_*)
    io = {} if is_deepspeed(strategy) else {"plugins": [AtomicCheckpointIO()]}
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(out_dir), **bar, **io)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    run_info = {"method": cfg.method_name, "loss": HydraConfig.get().runtime.choices.loss,
                "beta": objective.beta, "weight": objective.weight, "data": cfg.data.path, "model": cfg.model.path,
                "lr": cfg.optim.lr, "seed": cfg.seed, "reward_shift": cfg.reward_shift.mode,
                "experiment": cfg.experiment_name, "gamma": cfg.get("gamma"), "n_pairs": cfg.get("n_pairs"),
                "lora_r": lora.r, "weights_dtype": weights_dtype, "precision": str(cfg.trainer.precision)}
    metrics = train_and_evaluate(module, datamodule, trainer, scoring, out_dir, run_info, ckpt_path=cfg.ckpt_path)
    if logger and hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()
    if trainer.is_global_zero:
        from spot.cli import describe_outputs

        print(describe_outputs(out_dir))
    return metrics


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from spot.cli import one_job_per_launch
    from spot.errors import UserError, exit_with

    try:
        with one_job_per_launch():  # under -m, a DDP/DeepSpeed rank re-runs this job, not the sweep
            metrics = run(cfg)
    except UserError as e:
        exit_with(e)
    return (metrics.get("trained") or {}).get("groups", {}).get("in_domain")


if __name__ == "__main__":
    main()
