"""experiments/: select_lr.py chooses the learning rate on validation, never on the test set; toy_signs.py reads
the operator probabilities at the right positions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_run(sweep: Path, num: int, method: str, lr: float, val: float | None, test: float) -> None:
    run = sweep / f"{num}_{method}"
    run.mkdir(parents=True)
    groups = {"in_domain": test, "prior": 0.9}
    if val is not None:
        groups["val"] = val
    (run / "metrics.json").write_text(json.dumps({
        "run": {"method": method, "lr": lr},
        "base": {"groups": {"in_domain": 0.5, "val": 0.5, "prior": 0.9}},
        "trained": {"groups": groups},
        "delta": {"forgetting": 0.0},
    }))


def select(*sweeps: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "select_lr.py"), *map(str, sweeps)],
                          capture_output=True, text=True)


def test_chooses_on_validation_ties_to_the_smaller_rate_and_flags_grid_edges(tmp_path):
    pref, sft = tmp_path / "pref", tmp_path / "sft"
    # bco: the best test score (0.9) sits at 1e-3, but validation prefers 1e-4, an interior rate.
    write_run(pref, 0, "bco", 1e-5, 0.40, 0.41)
    write_run(pref, 1, "bco", 1e-4, 0.60, 0.55)
    write_run(pref, 2, "bco", 1e-3, 0.50, 0.90)
    # sft: two rates tie on validation; the smaller one wins, and it is the edge of the grid.
    write_run(sft, 0, "sft", 5e-4, 0.70, 0.10)
    write_run(sft, 1, "sft", 1.5e-3, 0.70, 0.80)
    out = select(pref, sft)
    assert out.returncode == 0, out.stderr
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in out.stdout.splitlines()
            if line.startswith("| bco") or line.startswith("| sft")}
    assert rows[("bco", "0.0001")].rstrip().endswith("yes |")
    assert not rows[("bco", "0.001")].rstrip().endswith("yes |")
    assert rows[("sft", "0.0005")].rstrip().endswith("yes |")
    assert "note: sft chose the smallest rate of its grid (0.0005)" in out.stdout
    assert "note: bco" not in out.stdout
    report = out.stdout.strip().splitlines()[-1]
    assert report.startswith("python report.py ") and str(pref / "1_bco") in report and str(sft / "0_sft") in report


def test_a_run_without_validation_scores_names_its_file_and_the_fix(tmp_path):
    write_run(tmp_path / "s", 0, "dpo", 1e-4, None, 0.3)
    out = select(tmp_path / "s")
    assert out.returncode != 0
    assert str(tmp_path / "s" / "0_dpo" / "metrics.json") in out.stderr and "eval=[toy,toy_val]" in out.stderr


def test_sign_probabilities_read_the_operator_positions_of_the_gold_solution():
    import importlib.util

    import torch

    from spot.chat import ChatFormat
    from spot.toy.model import build_model, build_tokenizer
    from spot.toy.tasks import Problem

    spec = importlib.util.spec_from_file_location("toy_signs", ROOT / "experiments" / "toy_signs.py")
    toy_signs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_signs)
    tok = build_tokenizer()
    model = build_model(tok, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64).eval()
    problems = [Problem(start=12, ops=(("+", 5), ("-", 3)), verbs=("buys", "loses")),
                Problem(start=40, ops=(("-", 7),), verbs=("sells",)),
                Problem(start=2, ops=(("-", 9),), verbs=("eats",))]  # 2-9=-7: a '-' in a result, skipped
    probs = toy_signs.sign_probabilities(model, tok, problems)
    assert {v: len(p) for v, p in probs.items()} == {"buys": 1, "loses": 1, "sells": 1}
    # "loses" is the second step of the first problem: P('-' | prompt, "12+5=17\n12"...) from a forward on the prefix
    prompt = ChatFormat(tok).prompt_ids(problems[0].text)
    completion = ChatFormat(tok).completion_ids(problems[0].solution())
    j = [i for i, t in enumerate(completion) if t == tok.convert_tokens_to_ids("-")][0]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + completion[:j]])).logits[0, -1]
    expected = logits.float().softmax(-1)[tok.convert_tokens_to_ids("-")].item()
    assert abs(probs["loses"][0] - expected) < 1e-5
