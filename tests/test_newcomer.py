"""A new user's first mistakes, run as they type them: each stops with one line naming what to fix, exit status
2, before any model loads, and leaves no run directory behind (their times: benchmarks/bench_errors.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (script, overrides, the start of the one error line)
MISTAKES = [
    ("train.py", ["loss.beta=abc"], "error: loss.beta: must be an int or float, got 'abc'"),
    ("train.py", ["trainer.max_epochs=abc"], "error: trainer.max_epochs: must be an int, got 'abc'"),
    ("train.py", ["trainer.devices=0"], "error: trainer.devices: must be a count"),
    ("train.py", ["data.path=data/nowhere.jsonl"], "error: data.path=data/nowhere.jsonl does not exist; create it"),
    ("train.py", ["model.path=./models/nowhere"], "error: model.path=./models/nowhere: no such directory"),
    # the README's old example: outputs/ exists (Hydra's run dirs), so this is a path, not a hub id
    ("evaluate.py", ["model=outputs/main_bco"], "error: model.path=outputs/main_bco: no such directory"),
    ("evaluate.py", ["model=nosuch-org/nosuch-model"], "error: model.path=nosuch-org/nosuch-model: no local "
                                                        "directory of that name, and as a hub id"),
    ("rectify.py", ["problems=dapo", "oracle=toy"], "error: problems.source.path=open-r1/DAPO-Math-17k-Processed: "),
    # counts out of range, named by their key before anything loads (-1 used to drop each suite's last item)
    ("evaluate.py", ["eval.limit=-1"], "error: eval.limit: must be >= 0 or null, got -1"),
    ("evaluate.py", ["eval.suites.toy_in_domain.n_samples=0"],
     "error: eval.suites.toy_in_domain.n_samples: must be >= 1 or null, got 0"),
    ("evaluate.py", ["generation=server", "generation.options.max_in_flight=0"],
     "error: generation.options.max_in_flight: must be >= 1, got 0"),
    ("evaluate.py", ["kl.batch_size=0"], "error: kl.batch_size: must be >= 1, got 0"),
    # what Hydra rejects while composing: a key that is not there, an option that is not there (spot.entry)
    ("train.py", ["loss.betaa=0.1"], "error: loss.betaa: no such key; did you mean loss.beta?"),
    ("train.py", ["loss=bcoo"], "error: loss=bcoo: no such option; did you mean bco?; the options of loss are "),
    ("evaluate.py", ["eval.limt=5"], "error: eval.limt: no such key; did you mean eval.limit?"),
    ("rectify.py", ["oracle=toyy"], "error: oracle=toyy: no such option; did you mean toy?; the options of "),
]


def run(tmp_path: Path, script: str, overrides: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.parametrize("script, overrides, message", MISTAKES, ids=[" ".join(m[1]) for m in MISTAKES])
def test_a_mistake_is_one_line_exit_2_and_leaves_no_run_dir(tmp_path, script, overrides, message):
    # the toy base by absolute path, as from the repo root; run in an empty directory to see what is left
    toy = [] if script == "evaluate.py" else [f"model.path={ROOT / 'assets/toy-base'}"]
    proc = run(tmp_path, script, [*toy, *overrides])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed run left files behind"


def test_with_the_hub_allowed_an_unknown_hub_id_is_still_one_line(tmp_path):
    """No HF_HUB_OFFLINE: one probe of the hub (this machine has no route to it; with one: no such model)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    proc = run(tmp_path, "evaluate.py", ["model=nosuch-org/nosuch-model"], env=env)
    assert proc.returncode == 2 and "Retrying" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: model.path=nosuch-org/nosuch-model: no ")
    assert "no local path of that name, and as a hub id" in line or "no such model" in line


def test_a_run_that_wrote_something_keeps_its_directory(tmp_path):
    """Only a directory holding nothing but Hydra's own files is removed."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    proc = run(tmp_path, "train.py", ["loss.beta=abc", "hydra.run.dir=run"])
    assert proc.returncode == 2
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine" and (tmp_path / "run" / ".hydra").is_dir()


BAD_UTF8 = b'{"prompt": "1+1?", "chosen": "2", "rejected": "3", "question": "q", "answer": "#### 2"}\n' \
           b'{"prompt": "caf\xe9?", "chosen": "2", "rejected": "3", "question": "q\xff", "answer": "#### 2"}\n'


@pytest.mark.parametrize("script, overrides", [
    ("train.py", ["data.path={bad}"]),
    ("rectify.py", ["problems=jsonl", "problems.source.path={bad}", "problems.source.answer_key=answer",
                    "problems.source.prompt_key=question", "oracle=toy"]),
    ("evaluate.py", ["eval=[gsm8k]", "eval.suites.gsm8k.path={bad}"]),
    ("evaluate.py", ["completions={bad}", "eval=[gsm8k]", f"eval.suites.gsm8k.path={ROOT}/assets/gsm8k/test.jsonl"]),
], ids=["pairs", "problems", "benchmark", "completions"])
def test_bad_utf8_in_any_file_a_user_gives_is_file_and_line(tmp_path_factory, tmp_path, script, overrides):
    bad = tmp_path_factory.mktemp("data") / "bad.jsonl"
    bad.write_bytes(BAD_UTF8)
    toy = f"model={ROOT / 'assets/toy-base'}" if script == "evaluate.py" else f"model.path={ROOT / 'assets/toy-base'}"
    proc = run(tmp_path, script, [toy, *(o.format(bad=bad) for o in overrides)])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}:2: not valid UTF-8 (byte ")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
