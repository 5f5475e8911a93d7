"""rectify.py's job as one plain function: a composed rectify config in, the report out (`rectify`).

rectify.py composes the config and calls `rectify(cfg)`, then says what was kept; a test or a script composes the
same config (hydra.compose) and calls it in its own process. The pipeline itself is spot.rectify.pipeline.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("rectify")


def settings_of(cfg: DictConfig, oracle) -> dict[str, dict]:
    """What each journaled stage depends on; the API key is never in the config, so never here either. The
    Oracle says which of its settings change its replies (spot.rectify.oracles.base.Oracle.settings)."""
    sampling = OmegaConf.to_container(cfg.sampling, resolve=True)
    samples = {"model": cfg.model.path, "sampling": sampling, "problem_template": cfg.model.problem_template,
               "enable_thinking": cfg.model.enable_thinking, "generation": cfg.generation.engine}
    backend = OmegaConf.to_container(cfg.oracle.backend, resolve=True)
    return {"samples": samples, "oracle": {**oracle.settings(backend), "with_reference": cfg.with_reference}}


def shard(items: list, index: int, count: int) -> list:
    from spot.errors import check

    check(isinstance(count, int) and count >= 1, "shard.count", f"must be a whole number >= 1, got {count!r}")
    check(isinstance(index, int) and 0 <= index < count, "shard.index", f"must be in [0, {count}), got {index!r}")
    return items[index::count]


def rectify(cfg: DictConfig) -> dict:
    from spot.chat import ChatFormat
    from spot.cli import build, engine_of, sampling_of
    from spot.gguf import prepare
    from spot.models import load_tokenizer
    from spot.rectify.config import Price, RectifyConfig
    from spot.rectify.pipeline import run
    from spot.rectify.sampling import PolicySampler
    from spot.threads import apply_threads

    log.info(apply_threads(cfg.get("threads", "auto")))
    run_cfg = RectifyConfig(out_dir=cfg.out_dir, seed=cfg.seed, gamma=cfg.gamma, chunk_size=cfg.chunk_size,
                            direct=cfg.direct, with_reference=cfg.with_reference,
                            max_in_flight=cfg.oracle.max_in_flight, price=Price(**cfg.oracle.price),
                            progress=cfg.progress, journal_dir=cfg.journal_dir,
                            retry_rejected=cfg.oracle.retry_rejected, stop_grace_s=cfg.oracle.stop_grace_s)
    sampling = sampling_of(cfg.sampling, "sampling")
    engine = engine_of(cfg.generation)
    oracle = build(cfg.oracle.backend, "oracle.backend")  # early: a missing key must stop the run before sampling
    items = shard(build(cfg.problems.source, "problems.source"), cfg.shard.index, cfg.shard.count)
    verifier = build(cfg.problems.verifier, "problems.verifier")
    prepare(cfg.model)  # a GGUF checkpoint (model=smollm2): its model directory, made once
    tokenizer = load_tokenizer(cfg.model.path)
    chat = ChatFormat(tokenizer, cfg.model.enable_thinking, cfg.model.problem_template)
    sampler = PolicySampler(cfg.model.path, cfg.model.dtype, chat, sampling, engine)
    tokenize = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    try:
        return run(items, sampler, tokenize, verifier, oracle, run_cfg, settings_of(cfg, oracle))
    finally:
        sampler.close()
