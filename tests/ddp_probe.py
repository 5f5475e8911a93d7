"""A test callback that writes what one rank trained on to `<out_dir>/probe_rank<r>.json` (tests/test_ddp.py).

Added to a train.py run with `+eval.callbacks=[{_target_: ddp_probe.RankProbe, out_dir: ...}]` and tests/ on
PYTHONPATH. Per step: the epoch, the examples of this rank's batch (the batch's `index`), its loss and the
reward shift after the update. At the end: whether this rank's RunScoring holds base / trained scores.
`stop_after_epochs` ends the run early, as an interrupted job would end, with the schedule of the full run.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class RankProbe(L.Callback):
    def __init__(self, out_dir: str, stop_after_epochs: int | None = None):
        self.out_dir, self.stop_after_epochs = Path(out_dir), stop_after_epochs
        self.steps: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append({"epoch": trainer.current_epoch, "index": batch["index"].tolist()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = self.steps[-1]
        step["loss"] = float(outputs["loss"])
        if pl_module.reward_shift is not None:
            step["shift"] = pl_module.reward_shift.value.item()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.stop_after_epochs is not None and trainer.current_epoch + 1 >= self.stop_after_epochs:
            trainer.should_stop = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        scoring = [c for c in trainer.callbacks if type(c).__name__ == "RunScoring"]
        shift = pl_module.reward_shift
        out = {"rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
               "steps": self.steps,
               "shift": None if shift is None else {k: getattr(shift, k).item() for k in ("value", "count", "total")},
               "scored_base": bool(scoring and scoring[0].base is not None),
               "scored_trained": bool(scoring and scoring[0].trained is not None)}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"probe_rank{trainer.global_rank}.json").write_text(json.dumps(out, indent=1) + "\n")
