"""A run that trainer.max_steps stopped, resumed with ckpt_path: it continues the schedule it was given or stops
with one line (spot.checkpointing.ScheduleGuard). Without the guard, a run stopped at step 4 of 12 (mid epoch 0)
resumed at epoch 1, skipped steps 5-6 of epoch 0 and restarted its decayed learning rate on a 12-step cosine."""

import json
from pathlib import Path

import pytest
from conftest import train_here, write_toy_files

from spot.checkpointing import ScheduleMismatch


def args_of(micro_model_dir: str, pairs: Path) -> list[str]:
    """6 steps an epoch (24 pairs, batches of 4), 2 epochs; scoring kept tiny, no mid-epoch checkpoints."""
    return [f"model.path={micro_model_dir}", f"data.path={pairs}", "data.batch_size=4", "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1", "checkpoint.every_minutes=null", "logger=csv", "eval.cache_base=false",
            "eval.suites.toy_in_domain.n=1", "eval.suites.toy_ood.n=1", "eval.suites.toy_prior.n=1", "threads=1",
            "save_policy=false"]


def steps_of(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "train/loss" in r]


def test_a_resume_past_the_max_steps_that_ended_the_run_stops_with_one_line(tmp_path, micro_model_dir):
    args = args_of(micro_model_dir, write_toy_files(tmp_path / "data")["pairs"])
    train_here(tmp_path, *args, "trainer.max_steps=4", "hydra.run.dir=stopped")
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    with pytest.raises(ScheduleMismatch) as e:  # the whole 2 epochs: 12 steps
        train_here(tmp_path, *args, f"ckpt_path={last}", "hydra.run.dir=resumed")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"ckpt_path={last}: its learning-rate schedule spans 4 steps")
    assert "(trainer.max_steps=4, trainer.max_epochs=2)" in message
    assert "would span 12 (trainer.max_steps=-1, trainer.max_epochs=2)" in message
    assert not (tmp_path / "resumed" / "train_log.jsonl").exists()  # not one step of another schedule
    with pytest.raises(ScheduleMismatch, match="would span 8 "):
        train_here(tmp_path, *args, f"ckpt_path={last}", "trainer.max_steps=8", "hydra.run.dir=resumed8")
    # the settings it was trained with: the schedule is complete, nothing more to train
    metrics = train_here(tmp_path, *args, f"ckpt_path={last}", "trainer.max_steps=4", "hydra.run.dir=same")
    assert metrics["steps"] == 4 and not (tmp_path / "same" / "train_log.jsonl").exists()
