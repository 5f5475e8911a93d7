"""Post-train a policy with SPoT or a baseline, evaluate it against its base, write metrics.json.

    python train.py                                  # toy world, loss=bco, CPU (needs `python rectify.py` first)
    python train.py loss=dpo loss.beta=0.05
    python train.py -m loss=bco,dpo,bce loss.beta=0.05,0.1
    python train.py -m experiment=toy_table          # Base/SFT/RFT/SFT+/DPO/BCE/BCO at toy scale
    python train.py model=hf model.path=<model> data=rectified_4k data.path=<pairs> "eval=[gsm8k]"
    python train.py trainer=deepspeed_zero2 model=hf model.path=Qwen/Qwen3-8B data=rectified_4k \
        speed.gradient_checkpointing=true           # 8 GPUs; multi-node commands: benchmarks/README.md
    python train.py threads=1                        # compute threads (default auto: the free cores; spot.threads)

This file composes the config and reads Hydra's runtime (the run directory, the chosen options); the run itself
is `spot.run.run(cfg, out_dir, choices)`, which a test or a script calls with a config from hydra.compose.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from spot.entry import job_label, one_job_per_launch
    from spot.errors import UserError, ctrl_c_stops, exit_with
    from spot.run import run

    runtime = HydraConfig.get().runtime
    label = job_label(cfg.method_name, list(HydraConfig.get().overrides.task))  # before a rank rewrites sys.argv
    try:
        # under -m, a DDP/DeepSpeed rank re-runs this job, not the sweep; Ctrl-C says what was kept, exit 130
        with one_job_per_launch(), ctrl_c_stops(runtime.output_dir):
            metrics = run(cfg, runtime.output_dir, dict(runtime.choices), label)
    except UserError as e:
        exit_with(e)
    return (metrics.get("trained") or {}).get("groups", {}).get("in_domain")


if __name__ == "__main__":
    from spot.entry import main_of

    main_of(main)  # Hydra's own errors (an unknown key or option) as one line, exit 2
