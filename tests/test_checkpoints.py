"""Nothing lost at a checkpoint: writes that are whole or absent (kill -9 mid-write, a full disk, $TMPDIR on another
file system), Ctrl-C and preemption that save and resume, a saved policy and DeepSpeed directories swapped in whole.

The run-level tests drive train.py as a user does, on the micro model, with the stops injected by the callbacks of
tests/kill_probe.py; every resumed run is compared with one that nobody stopped. The runs that nothing stops (the
clean run, the resumed ones) run in this process (conftest.train_here); the stopped ones in processes of their
own."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spot.checkpointing import AtomicCheckpointIO, CheckpointWriteError
from spot.rows import atomic_directory, commit_directory, recover_directory, staging_directory

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}


def full_disk_save(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_the_previous_checkpoint_whole_and_no_partial_file(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 2, "w": torch.arange(4.0)}, path)
    monkeypatch.setattr(torch, "save", full_disk_save)
    with pytest.raises(CheckpointWriteError) as e:
        io.save_checkpoint({"global_step": 4, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    message = str(e.value)
    assert "\n" not in message and "the disk is full" in message and "last.ckpt" in message
    assert os.listdir(path.parent) == ["last.ckpt"]  # no temporary file left beside it
    assert torch.load(path, weights_only=False)["global_step"] == 2


def test_the_temporary_file_of_a_save_killed_midway_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "last.ckpt"
    (tmp_path / ".last.ckpt.tmp-4242").write_bytes(b"half of an earlier run's checkpoint")
    (tmp_path / ".epoch=0-step=6.ckpt.tmp-4242").write_bytes(b"another file's: kept until that file is saved")
    AtomicCheckpointIO().save_checkpoint({"global_step": 8}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".epoch=0-step=6.ckpt.tmp-4242", "last.ckpt"]


def test_a_checkpoint_write_touches_nothing_in_tmpdir(tmp_path, monkeypatch):
    """Lightning's default IO stages the whole file in $TMPDIR (a 5 MB $TMPDIR stopped a run with 74 GB free
    where the checkpoint goes); this one writes only beside the target."""
    import tempfile

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR
    path = tmp_path / "run" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1000)}, path)
    assert list(tmpdir.iterdir()) == [] and torch.equal(torch.load(path)["w"], torch.ones(1000))


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "policy"
    with atomic_directory(target) as d:
        (d / "model.safetensors").write_text("v1")
    with pytest.raises(RuntimeError), atomic_directory(target) as d:
        (d / "model.safetensors").write_text("v2, half")
        raise RuntimeError("killed midway")
    assert (target / "model.safetensors").read_text() == "v1" and not staging_directory(target).exists()
    # a crash between the two renames of a swap: target absent, the new copy complete beside it
    staging = staging_directory(target)
    staging.mkdir()
    (staging / "model.safetensors").write_text("v3")
    commit_directory(target)
    assert (target / "model.safetensors").read_text() == "v3"
    os.replace(target, target.with_name(".policy.old"))  # as if killed after the first rename
    recover_directory(target)
    assert (target / "model.safetensors").read_text() == "v3"


def test_policy_saver_keeps_the_previous_policy_when_saving_fails(tmp_path, micro_model_dir, monkeypatch):
    from spot.models import PolicySaver, load_model, load_tokenizer

    model, tok = load_model(micro_model_dir, "float32"), load_tokenizer(micro_model_dir)
    saver = PolicySaver(tmp_path / "policy", "float32")
    saver.save(model, tok)
    before = load_file(tmp_path / "policy" / "model.safetensors")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)

    def disk_full(self, directory, **kwargs):
        (Path(directory) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(model), "save_pretrained", disk_full)
    with pytest.raises(OSError):
        saver.save(model, tok)
    after = load_file(tmp_path / "policy" / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]


def test_deepspeed_checkpoint_directories_are_swapped_in_whole(tmp_path, monkeypatch):
    """The strategy's own logic on one process (DeepSpeed itself needs CUDA to save): every rank writes into the
    staging directory, then it replaces the previous checkpoint; a failed save leaves the previous one."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    from spot.speed.deepspeed import AtomicDeepSpeedStrategy

    def fake_save(self, checkpoint, filepath, storage_options=None):  # what DeepSpeed writes, shard by shard
        (Path(filepath) / "checkpoint").mkdir(parents=True)
        for rank in range(2):
            if checkpoint.get("fail_at_rank") == rank:
                raise OSError(errno.ENOSPC, "No space left on device")
            (Path(filepath) / "checkpoint" / f"rank{rank}_states.pt").write_text(str(checkpoint["global_step"]))

    monkeypatch.setattr(DeepSpeedStrategy, "save_checkpoint", fake_save)
    strategy = AtomicDeepSpeedStrategy(stage=2)
    monkeypatch.setattr(AtomicDeepSpeedStrategy, "broadcast", lambda self, obj, src=0: obj)
    monkeypatch.setattr(AtomicDeepSpeedStrategy, "barrier", lambda self, name=None: None)
    monkeypatch.setattr(AtomicDeepSpeedStrategy, "is_global_zero", True)
    target = tmp_path / "checkpoints" / "last.ckpt"
    strategy.save_checkpoint({"global_step": 2}, target)
    with pytest.raises(OSError):
        strategy.save_checkpoint({"global_step": 4, "fail_at_rank": 1}, target)
    assert sorted(p.name for p in (target / "checkpoint").iterdir()) == ["rank0_states.pt", "rank1_states.pt"]
    assert {p.read_text() for p in (target / "checkpoint").iterdir()} == {"2"}
    strategy.save_checkpoint({"global_step": 6}, target)
    assert {p.read_text() for p in (target / "checkpoint").iterdir()} == {"6"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


# --- train.py, stopped as the world stops it -------------------------------------------------------------------

def train(cwd: Path, *overrides: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env or ENV)


def common(micro_model_dir: str, pairs: Path) -> list[str]:
    """12 steps (2 epochs of 6), a checkpoint every 2 steps, the final policy saved; scoring kept tiny."""
    return [f"model.path={micro_model_dir}", f"data.path={pairs}", "data.batch_size=4", "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1", "checkpoint.every_minutes=null", "checkpoint.every_n_steps=2",
            "logger=csv", "eval.cache_base=false", "eval.suites.toy_in_domain.n=2", "eval.suites.toy_ood.n=1",
            "eval.suites.toy_prior.n=1", "threads=1"]  # runs here and in processes of their own: one arithmetic


def probe(name: str, **kwargs) -> str:
    args = ", ".join(f"{k}: {v}" for k, v in kwargs.items())
    return f"+eval.callbacks=[{{_target_: kill_probe.{name}, {args}}}]"


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def step_of(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, micro_model_dir) -> tuple[Path, list[str]]:
    """The run nobody stopped, which every resumed run must reproduce."""
    from conftest import train_here, write_toy_files

    cwd = tmp_path_factory.mktemp("ckpt-runs")
    args = common(micro_model_dir, write_toy_files(cwd / "data")["pairs"])
    train_here(cwd, *args, "hydra.run.dir=clean")  # in this process: nothing stops it
    return cwd, args


def assert_resumes_as_the_clean_run(cwd: Path, args: list[str], ckpt: Path, run: str) -> None:
    from conftest import train_here

    train_here(cwd, *args, f"hydra.run.dir={run}", f"ckpt_path={ckpt}")  # in this process: nothing stops it
    first = step_of(ckpt) + 1
    want, got = losses(cwd / "clean"), losses(cwd / run)
    assert sorted(got) == list(range(first, 13))
    assert [got[s] for s in got] == pytest.approx([want[s] for s in got], abs=1e-6)
    a, b = (load_file(cwd / r / "policy" / "model.safetensors") for r in ("clean", run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights


@pytest.mark.slow
def test_kill_9_while_a_checkpoint_is_written_with_tmpdir_on_another_file_system(clean):
    """last.ckpt of step 2 is being overwritten by step 4's when the process is killed, halfway through the
    write, with $TMPDIR on a tmpfs (another file system than the run, as on a cluster): step 2's checkpoint
    still loads, and the run resumed from it ends with the clean run's weights, bit for bit."""
    cwd, args = clean
    env = dict(ENV)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        tmpdir = shm / f"spot-test-{os.getpid()}"
        tmpdir.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
        assert os.stat(tmpdir).st_dev != os.stat(cwd).st_dev  # two file systems, the case that lost a checkpoint
    killed = train(cwd, *args, "hydra.run.dir=killed", probe("FailCheckpointWrite", step=4, how="kill"), env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ckpts = cwd / "killed" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["last.ckpt"] and step_of(ckpts / "last.ckpt") == 2
    assert [p.name for p in ckpts.glob(".last.ckpt.tmp-*")]  # the half-written step 4, under a temporary name
    if "TMPDIR" in env:
        assert list(Path(env["TMPDIR"]).iterdir()) == []
    assert_resumes_as_the_clean_run(cwd, args, ckpts / "last.ckpt", "resumed-after-kill")


@pytest.mark.slow
def test_a_full_disk_at_an_epoch_checkpoint_is_one_line_and_leaves_only_loadable_checkpoints(clean):
    """Epoch checkpoints only; the disk fills while epoch 1's (step 12) is written, the case that once left a
    truncated `epoch=1-step=12.ckpt` under a valid name."""
    cwd, args = clean
    proc = train(cwd, *args, "checkpoint.every_n_steps=null", "hydra.run.dir=full",
                 probe("FailCheckpointWrite", step=12, how="disk_full"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: checkpoint ") and "the disk is full" in line and "intact" in line
    ckpts = cwd / "full" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch=0-step=6.ckpt", "last.ckpt"]  # nothing partial
    assert step_of(ckpts / "epoch=0-step=6.ckpt") == step_of(ckpts / "last.ckpt") == 6


@pytest.mark.slow
def test_ctrl_c_mid_epoch_saves_a_checkpoint_that_resumes_as_the_uninterrupted_run(clean):
    """SIGINT arrives during step 4 (mid epoch 0; with the default 30-minute cadence no checkpoint exists yet):
    the step finishes, last.ckpt is saved at step 4, the run stops with one line and exit status 130."""
    cwd, args = clean
    args = [a for a in args if not a.startswith("checkpoint.")]  # the default: every 30 minutes, so none yet
    proc = train(cwd, *args, "hydra.run.dir=ctrl-c", probe("SignalAtStep", step=3, signum="SIGINT"))
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-3000:]
    last = cwd / "ctrl-c" / "checkpoints" / "last.ckpt"
    line = proc.stderr.strip().splitlines()[-1]
    assert line == f"stopped: SIGINT at step 4 (epoch 0): saved {last}; resume with ckpt_path={last}"
    assert "Traceback" not in proc.stderr and not (cwd / "ctrl-c" / "metrics.json").exists()
    assert step_of(last) == 4
    assert_resumes_as_the_clean_run(cwd, args, last, "resumed-after-ctrl-c")


@pytest.mark.slow
def test_a_second_signal_stops_at_once(clean):
    cwd, args = clean
    proc = train(cwd, *args, "hydra.run.dir=twice", probe("SignalAtStep", step=3, signum="SIGTERM", times=2))
    assert proc.returncode == -signal.SIGTERM, proc.stderr[-3000:]
    assert "SIGTERM: saving a checkpoint after this step" in proc.stderr
    for ckpt in (cwd / "twice" / "checkpoints").glob("*.ckpt"):  # whatever is there loads
        step_of(ckpt)


def test_ctrl_c_before_any_step_exits_130_saying_nothing_was_kept_and_leaves_no_empty_run(tmp_path, micro_model_dir):
    """SIGINT as fit sets up, before the base is scored, with the default (offline W&B) logger: once exit status 1
    (Lightning's KeyboardInterrupt), a run directory and a W&B run holding nothing, and a `wandb sync` hint."""
    from conftest import write_toy_files

    args = [a for a in common(micro_model_dir, write_toy_files(tmp_path / "data")["pairs"]) if a != "logger=csv"]
    proc = train(tmp_path, *args, "hydra.run.dir=outputs/stopped", probe("SignalAtSetup", signum="SIGINT"))
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-3000:]
    run = tmp_path / "outputs" / "stopped"
    line = proc.stderr.strip().splitlines()[-1]
    assert line == f"stopped: SIGINT before anything was saved: nothing kept; the run directory {run} is removed"
    assert "Traceback" not in proc.stderr and "wandb sync" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()  # nor the W&B run in it


def test_ctrl_c_outside_the_steps_names_the_newest_checkpoint_to_resume_from(tmp_path):
    from spot.errors import what_was_kept

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    (ckpts / "epoch=0-step=6.ckpt").write_bytes(b"older")
    os.utime(ckpts / "epoch=0-step=6.ckpt", (1, 1))
    (ckpts / "last.ckpt").write_bytes(b"newer")
    (tmp_path / "policy").mkdir()
    last = ckpts / "last.ckpt"
    assert what_was_kept(tmp_path) == (f"SIGINT: checkpoint {last} kept; the trained policy is in "
                                       f"{tmp_path / 'policy'}; resume with ckpt_path={last}")
