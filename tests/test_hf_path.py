"""The real-model path on CPU: a Hugging Face model built from a config (byte-level BPE tokenizer, Qwen3-style
chat template) trained by train.py's run (in this process: conftest.train_here) on GSM8K pairs and scored on GSM8K,
then scored again by evaluate.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_here
from micro_hf import build_micro_hf_model, gsm8k_corpus, gsm8k_pairs, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "assets" / "gsm8k" / "test.jsonl"   # the repository's slice (assets/gsm8k/README.md)


def entry(script: str, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory) -> Path:
    """One train.py run of BCO on the micro HF model, scored on the first 20 GSM8K test problems."""
    base = tmp_path_factory.mktemp("hf-path")
    model = build_micro_hf_model(base / "model", gsm8k_corpus())
    pairs = write_jsonl(base / "pairs.jsonl", gsm8k_pairs(12))
    train_here(base, "model=hf", f"model.path={model}", "model.dtype=float32", "data=rectified_4k",
               f"data.path={pairs}", "data.max_length=512", "data.max_prompt_length=256", "eval=[gsm8k]",
               f"eval.suites.gsm8k.path={GSM8K}", "eval.suites.gsm8k.limit=20", "eval.max_new_tokens=16",
               "trainer.max_steps=3", "logger=csv", "hydra.run.dir=run")  # in this process (conftest.train_here)
    return base


def test_train_scores_gsm8k_before_and_after_on_the_hf_path(hf_run):
    run = hf_run / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["base"]["suites"]) == set(metrics["trained"]["suites"]) == {"gsm8k"}  # no toy suites
    assert metrics["n"] == {"gsm8k": 20} and metrics["steps"] == 3
    assert len(metrics["base"]["correct"]["gsm8k"]) == len(metrics["trained"]["correct"]["gsm8k"]) == 20
    assert metrics["run"]["beta"] == 0.1 and "train/reward_shift" in metrics["train"]
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 20 and records[0]["answer"] == "18"
    # the policy is trained and scored on one prompt shape: the model config's template, non-thinking mode
    from transformers import AutoTokenizer

    from spot.chat import ChatFormat

    tok = AutoTokenizer.from_pretrained(run / "policy")
    text = ChatFormat(tok, False, "{prompt}\nPlease reason step by step, and put your final answer within "
                                  "\\boxed{}.").prompt_text(records[0]["prompt"])
    assert text.endswith("within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_evaluate_py_gives_the_scores_train_time_evaluation_gave(hf_run):
    """The same model and suite through evaluate.py: identical completions, item by item, for both sides."""
    run = hf_run / "run"
    entry("evaluate.py", hf_run, f"model={run}", "model.dtype=float32", "eval=[gsm8k]",
          f"eval.suites.gsm8k.path={GSM8K}", "eval.suites.gsm8k.limit=20", "eval.max_new_tokens=16",
          "kl=null", "wandb.mode=disabled", "eval.progress=false", "hydra.run.dir=eval")
    trained = json.loads((run / "metrics.json").read_text())
    again = json.loads((hf_run / "eval" / "metrics.json").read_text())
    for side in ("trained", "base"):
        assert again[side]["suites"] == trained[side]["suites"]
        assert again[side]["correct"] == trained[side]["correct"]
    train_time = [r["completion"] for r in map(json.loads, (run / "samples.jsonl").read_text().splitlines())]
    later = [r["completion"] for r in map(json.loads, (hf_run / "eval" / "samples.jsonl").read_text().splitlines())]
    assert later == train_time and len(set(later)) > 1  # real, varied completions, not 20 empty strings
