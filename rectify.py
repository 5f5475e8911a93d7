"""Rectified data: sample the policy, verify, have an Oracle edit the wrong answers, filter, write.

    python rectify.py                                              # toy world, toy Oracle -> data/toy/
    python rectify.py model=hf model.path=Qwen/Qwen3-8B problems=gsm8k oracle=anthropic out_dir=data/gsm8k
    python rectify.py problems=gsm8k_solutions oracle=fake         # GSM8K model solutions, local fake Claude

Rerun the same command after a crash: journaled work is skipped. The job is `spot.rectify_run.rectify(cfg)`;
the pipeline, src/spot/rectify/pipeline.py.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger("rectify")


@hydra.main(version_base=None, config_path="conf", config_name="rectify")
def main(cfg: DictConfig) -> None:
    from spot.errors import UserError, exit_with
    from spot.rectify_run import rectify

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
