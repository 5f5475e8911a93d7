"""train.py's job as one plain function: a composed config in, metrics out (`run`).

train.py composes the config with Hydra and calls `run(cfg, out_dir, choices)`; nothing here reads Hydra's
runtime, so a test or a script composes the same config (hydra.compose) and calls it in its own process. The steps
are named: `check_settings` (every value typed and checked before a model or data file is read), `check_inputs`
(the model and data exist), `build_module` (tokenizer, data, policy, reference), `build_trainer` (scoring,
callbacks, the Lightning trainer) and `run_info` (what metrics.json says about the run).

Imports are inside the functions, the light ones first: a bad value stops in a second or two, before Lightning
and transformers are imported (several seconds on 2 cores).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass
class Settings:
    """The checked, typed settings of one run: what `check_settings` returns and the build steps take."""

    objective: Any          # spot.losses.Objective
    optim: Any              # spot.optim.OptimConfig
    shift: Any              # spot.losses.RewardShift, or None when the objective does not use one
    sampling: Any           # spot.generation.Sampling
    suites: list
    engine: Any             # spot.engines.EngineSpec
    lora: Any               # spot.lora.LoraSpec
    strategy: Any           # the trainer's strategy node or name
    weights_dtype: str
    mid_epoch: dict | None  # the mid-epoch ModelCheckpoint's cadence
    reference: str          # where reference log-probs come from: a spot.reference kind, decided here once


def check_settings(cfg: DictConfig, trainer_choice: str | None) -> Settings:
    """Typed settings first, then what the hardware and precision allow: a wrong value stops here, before a
    model or a data file is read. `trainer_choice` is the trainer= option."""
    from spot.preflight import check_trainer
    from spot.threads import choose_threads

    # plain values first, before torch is imported (a second or two): the trainer's counts, the thread setting
    check_trainer(OmegaConf.to_container(cfg.trainer, resolve=True))
    choose_threads(cfg.get("threads", "auto"))

    from spot.cli import build, build_suites, engine_of, sampling_of
    from spot.lora import LoraSpec
    from spot.losses import RewardShift
    from spot.optim import OptimConfig
    from spot.preflight import check_attention, check_hardware, checkpoint_cadence, is_deepspeed, load_dtype
    from spot.reference import decide

    objective = build(cfg.loss, "loss")
    optim = OptimConfig(**{**cfg.optim, "betas": tuple(cfg.optim.betas)})
    shift = RewardShift(**cfg.reward_shift) if objective.needs_shift else None
    sampling = sampling_of(cfg.eval.sampling, "eval.sampling")
    suites = build_suites(cfg.eval)
    engine = engine_of(cfg.generation)
    lora = LoraSpec(**OmegaConf.to_container(cfg.model.lora, resolve=True)) if cfg.model.get("lora") else LoraSpec()
    strategy = cfg.trainer.get("strategy")
    check_hardware(trainer_choice, cfg.trainer.accelerator, strategy)
    weights_dtype = load_dtype(cfg.model.dtype, cfg.trainer.precision, is_deepspeed(strategy), lora.enabled)
    check_attention(cfg.model.get("attn_implementation"))
    mid_epoch = checkpoint_cadence(**cfg.checkpoint) if cfg.get("checkpoint") else None
    reference = decide(objective, precompute=cfg.speed.precompute_reference, lora=lora.enabled)
    return Settings(objective, optim, shift, sampling, suites, engine, lora, strategy, weights_dtype, mid_epoch,
                    reference)


def check_inputs(cfg: DictConfig) -> None:
    """The model and the data exist (a GGUF checkpoint, model=smollm2, is first converted, once)."""
    from spot.gguf import prepare
    from spot.hub import check_local_model
    from spot.rows import check_exists

    prepare(cfg.model)
    check_local_model(cfg.model.path)
    check_exists(cfg.data.path, "data.path", cfg.data.get("make_command", ""))


def build_module(cfg: DictConfig, s: Settings):
    """(module, datamodule, chat, model_config): the tokenizer, the data, the policy and its reference."""
    from spot.chat import ChatFormat
    from spot.data import PairDataModule
    from spot.models import load_config, load_model, load_tokenizer
    from spot.module import SPoTModule
    from spot.preflight import check_model_fits
    from spot.reference import LIVE, Reference

    tokenizer = load_tokenizer(cfg.model.path)
    model_config = load_config(cfg.model.path)
    strategy_spec = OmegaConf.to_container(s.strategy, resolve=True) if hasattr(s.strategy, "keys") else s.strategy
    check_model_fits(cfg.model.path, model_config, s.lora, s.weights_dtype, cfg.trainer.accelerator,
                     cfg.trainer.devices, strategy_spec, s.reference == LIVE)
    chat = ChatFormat(tokenizer, cfg.model.enable_thinking, cfg.model.problem_template)
    datamodule = PairDataModule(chat=chat, pairs=s.objective.needs_pairs, seed=cfg.seed, layout=cfg.speed.layout,
                                group_by_length=cfg.speed.group_by_length,
                                **OmegaConf.to_container(cfg.data, resolve=True))
    datamodule.setup("fit")
    attn = cfg.model.get("attn_implementation")
    policy = load_model(cfg.model.path, s.weights_dtype, attn)
    if s.lora.enabled:
        policy = s.lora.apply(policy)
    if cfg.speed.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # only a live reference is a second model; precomputed log-probs come from the policy at its initial
    # weights before training (spot.refcache), adapters_off from the policy itself
    reference = Reference.live(load_model(cfg.model.path, cfg.model.dtype, attn)) if s.reference == LIVE \
        else Reference(s.reference)
    module = SPoTModule(policy, s.objective, reference=reference, reward_shift=s.shift, optim=s.optim)
    return module, datamodule, chat, model_config


def build_scoring(cfg: DictConfig, s: Settings, chat, model_config, out_dir: Path):
    """The RunScoring callback: the base scored before training (or read from its cache), the trained after."""
    from spot.models import PolicySaver
    from spot.training import RunScoring, base_cache_key

    scored_by = {**s.engine.settings(), "weights": s.weights_dtype, "trainer.precision": str(cfg.trainer.precision)}
    key = base_cache_key(cfg.model.path, s.suites, s.sampling, chat, cfg.seed, model_config, scored_by) \
        if cfg.eval.cache_base else None
    saver = PolicySaver(out_dir / "policy", cfg.model.dtype, cfg.model.get("max_shard_size", "5GB"), s.lora.merge) \
        if cfg.save_policy else None
    return RunScoring(chat, s.suites, s.sampling, seed=cfg.seed, progress=cfg.eval.progress,
                      base_cache=Path(".cache/spot/base_eval") / f"{key}.json" if key else None,
                      save=saver, engine=s.engine, base_model=cfg.model.path)


def build_trainer(cfg: DictConfig, s: Settings, scoring, model_config, out_dir: Path):
    """(trainer, logger): the configured trainer with the run's callbacks, checkpoint IO and logger."""
    from hydra.utils import instantiate

    from spot.checkpointing import AtomicCheckpointIO, SaveOnSignal, ScheduleGuard
    from spot.models import weights_key
    from spot.preflight import is_deepspeed
    from spot.progress import on_terminal
    from spot.refcache import ReferenceLogps
    from spot.reference import PRECOMPUTED
    from spot.throughput import Throughput
    from spot.training import StepLog, TrainProgress

    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in cfg.trainer.get("callbacks") or []]
    callbacks += [instantiate(c) for c in cfg.eval.get("callbacks") or []]  # e.g. eval=toy_curves
    callbacks += [Throughput(), StepLog(out_dir / "train_log.jsonl"), TrainProgress(),  # Throughput first
                  SaveOnSignal(out_dir / "checkpoints" / "last.ckpt"),  # Ctrl-C/SIGTERM: save, stop
                  ScheduleGuard(cfg.ckpt_path), scoring]  # a resume continues its checkpoint's schedule or stops
    if s.mid_epoch is not None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0,
                                         enable_version_counter=False, **s.mid_epoch))  # the same last.ckpt
    if s.reference == PRECOMPUTED:
        callbacks.append(ReferenceLogps(cfg.speed.reference_cache_dir,
                                        model_key=weights_key(cfg.model.path, model_config)))
    # no terminal (nohup, SLURM, CI): Lightning's bar would print once at the end; TrainProgress prints lines
    bar = {} if on_terminal() else {"enable_progress_bar": False}
    # checkpoints written beside their target and renamed in (spot.checkpointing); DeepSpeed's directories by its
    # strategy (trainer=deepspeed_*)
    io = {} if is_deepspeed(s.strategy) else {"plugins": [AtomicCheckpointIO()]}
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(out_dir), **bar, **io)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer, logger


def run_info(cfg: DictConfig, s: Settings, loss_choice: str) -> dict:
    """What metrics.json records about the run (its "run" entry); `loss_choice` is the loss= option."""
    return {"method": cfg.method_name, "loss": loss_choice, "beta": s.objective.beta, "weight": s.objective.weight,
            "data": cfg.data.path, "model": cfg.model.path, "lr": cfg.optim.lr, "seed": cfg.seed,
            "reward_shift": cfg.reward_shift.mode, "experiment": cfg.experiment_name, "gamma": cfg.get("gamma"),
            "n_pairs": cfg.get("n_pairs"), "lora_r": s.lora.r, "weights_dtype": s.weights_dtype,
            "precision": str(cfg.trainer.precision)}


def run(cfg: DictConfig, out_dir: str | Path, choices: Mapping[str, str | None], label: str | None = None) -> dict:
    """One training run of the composed train config: checks, builds, trains, scores, writes metrics.json into
    `out_dir` and returns the metrics. `choices` are the config groups' options (Hydra's runtime.choices; "loss"
    and "trainer" are read); `label` names the run's row (a sweep job's swept settings: spot.entry.job_label)."""
    from spot.threads import apply_threads

    s = check_settings(cfg, choices.get("trainer"))
    print(apply_threads(cfg.get("threads", "auto"), processes=processes_per_machine(cfg)), flush=True)
    check_inputs(cfg)

    import lightning as L

    from spot.cli import describe_outputs
    from spot.training import train_and_evaluate

    out_dir = Path(out_dir)
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule, chat, model_config = build_module(cfg, s)
    scoring = build_scoring(cfg, s, chat, model_config, out_dir)
    trainer, logger = build_trainer(cfg, s, scoring, model_config, out_dir)
    info = {**run_info(cfg, s, choices["loss"]), "label": label or cfg.method_name}
    metrics = train_and_evaluate(module, datamodule, trainer, scoring, out_dir, info, ckpt_path=cfg.ckpt_path)
    if logger and hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()
    if trainer.is_global_zero:
        print(describe_outputs(out_dir))
    return metrics


def processes_per_machine(cfg: DictConfig) -> int:
    """How many training processes share this machine's cores: the devices of a CPU trainer (ddp_cpu), else 1."""
    devices = cfg.trainer.get("devices")
    if cfg.trainer.get("accelerator") == "cpu" and isinstance(devices, int) and devices > 1:
        return devices
    return 1
