"""Rectified data: sample the policy, verify, have an Oracle edit the wrong answers, filter, write.

    python rectify.py                                              # toy world, toy Oracle -> data/toy/
    python rectify.py model=hf model.path=Qwen/Qwen3-8B problems=gsm8k oracle=anthropic out_dir=data/gsm8k
    python rectify.py problems=gsm8k_solutions oracle=fake         # GSM8K model solutions, local fake Claude

Rerun the same command after a crash: journaled work is skipped. See src/spot/rectify/pipeline.py.
"""

from __future__ import annotations

import logging
import sys

from spot.threads import quiet_idle_threads

quiet_idle_threads()  # before torch is imported

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

log = logging.getLogger("rectify")


def settings_of(cfg: DictConfig, oracle) -> dict[str, dict]:
    """What each journaled stage depends on; the API key is never in the config, so never here either."""
    backend = OmegaConf.to_container(cfg.oracle.backend, resolve=True)
    for speed_only in ("max_in_flight", "timeout_s", "max_attempts", "backoff_s", "max_backoff_s", "batch_size",
                       "gather_s", "poll_s", "ledger", "base_url"):
        # how fast, how patient and through which endpoint (a proxy that moved), not what is asked: free to
        # change between reruns
        backend.pop(speed_only, None)
    sampling = OmegaConf.to_container(cfg.sampling, resolve=True)
    samples = {"model": cfg.model.path, "sampling": sampling, "problem_template": cfg.model.problem_template,
               "enable_thinking": cfg.model.enable_thinking, "generation": cfg.generation.engine}
    return {"samples": samples,
            "oracle": {"backend": backend, "with_reference": cfg.with_reference,
                       "prompts": getattr(oracle, "prompt_digest", None)}}


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
    from spot.rectify.pipeline import Price, RectifyConfig, run
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


@hydra.main(version_base=None, config_path="conf", config_name="rectify")
def main(cfg: DictConfig) -> None:
    from spot.errors import UserError, exit_with

    try:
        report = rectify(cfg)
    except UserError as e:
        exit_with(e)
    c = report["counts"]
    log.info("%d samples, %d correct (rft), %d wrong -> %d pairs (gamma %.2f), %d direct; drops %s; wrote %s",
             c["samples"], c["correct"], c["wrong"], c["pairs"], report["gamma"], c["direct"],
             report["drops"]["rectify"], cfg.out_dir)
    if c["oracle_unavailable_this_run"]:
        log.warning("%d Oracle calls failed after every retry (dropped as no_reply); rerun the same command to "
                    "ask them again", c["oracle_unavailable_this_run"])
    rejected = sum(report["drops"][stage].get("oracle_rejected", 0) for stage in ("rectify", "direct"))
    if rejected:
        log.warning("%d items dropped as oracle_rejected: the API refused their request for good (status and "
                    "message in drops.jsonl); after the fix, oracle.retry_rejected=true asks them again", rejected)
    from spot.cli import describe_outputs

    print(describe_outputs(cfg.out_dir))
    if c["wrong"] and not c["pairs"] and not cfg.allow_empty:  # a data set of nothing is not a success
        log.warning("0 pairs kept of %d wrong answers (drops: %s); check gamma and the Oracle's replies in "
                    "drops.jsonl, or pass allow_empty=true", c["wrong"], report["drops"]["rectify"])
        sys.exit(3)


if __name__ == "__main__":
    from spot.entry import main_of

    main_of(main)  # Hydra's own errors (an unknown key or option) as one line, exit 2
