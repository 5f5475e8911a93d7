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


def study_run(root: Path, sweep: str, num: int, method: str, lr: float, seed: int, val: float, ind: float,
              prior: float, chosen: float | None = None) -> None:
    run = root / sweep / f"{num}_{method}"
    run.mkdir(parents=True)
    base = {"in_domain": 0.6, "val": 0.6, "prior": 0.9, "ood_names": 0.4, "ood": 0.01, "ood_long": 0.03}
    train = {} if chosen is None else {"val/rewards/chosen": chosen, "val/kl": 0.1}
    (run / "metrics.json").write_text(json.dumps({
        "run": {"method": method, "lr": lr, "seed": seed, "model": "assets/toy-base"},
        "base": {"groups": base},
        "trained": {"groups": {**base, "in_domain": ind, "val": val, "prior": prior}},
        "delta": {"forgetting": base["prior"] - prior}, "train": train,
        "paired": {"toy_in_domain": {"delta": ind - 0.6, "se": 0.015, "n": 1000}},
    }))


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "study" / "analyze.py"), str(root), *args],
                          capture_output=True, text=True)


def test_the_study_analysis_chooses_extends_seeds_and_gives_verdicts_by_the_protocol(tmp_path):
    root = tmp_path / "b0"
    for i, lr in enumerate((1e-6, 1e-5, 1e-4, 1e-3)):  # bco is best at 1e-5 (interior), dpo at 1e-6 (an edge)
        study_run(root, "grid_pref", i, "bco", lr, 0, val=0.7 if lr == 1e-5 else 0.5, ind=0.7, prior=0.9, chosen=0.5)
        study_run(root, "grid_pref", 4 + i, "dpo", lr, 0, val=0.65 if lr == 1e-6 else 0.3, ind=0.6, prior=0.9,
                  chosen=-1.0)
    for i, lr in enumerate((5e-5, 5e-4, 5e-3)):
        study_run(root, "grid_sft", i, "sft_plus", lr, 0, val=0.8 if lr == 5e-4 else 0.5, ind=0.8, prior=0.5)
    work = tmp_path / "work"
    nxt = analyze(root, "--next", "--methods", "dpo,bco,sft_plus", "--work", str(work))
    assert nxt.returncode == 0, nxt.stderr
    out, rec = work / "extend" / "dpo_lr1e-07_s0", root / "extend" / "dpo_lr1e-07_s0"
    assert nxt.stdout.splitlines() == [  # an edge extends its grid first, once; then the seeds
        f'rm -rf {out} && python train.py method=dpo pref_lr=1e-07 seed=0 "eval=[toy,toy_val,toy_ood_names,'
        f'toy_ood_long]" logger=csv model.path=assets/toy-base toy_data=data/toy experiment_name=study '
        f"hydra.run.dir={out} && rm -rf {rec}.tmp && mkdir -p {rec}.tmp && cp {out}/metrics.json "
        f"{out}/train_log.jsonl {rec}.tmp/ && mv {rec}.tmp {rec}"]
    # the job's record, made by its own command from a finished job's files: the next --next knows it is done
    (work / "extend" / "dpo_lr1e-07_s0").mkdir(parents=True)
    study_run(work / "extend", "x", 0, "dpo", 1e-7, 0, val=0.6, ind=0.6, prior=0.9, chosen=-1.0)
    finished = work / "extend" / "x" / "0_dpo"
    (finished / "train_log.jsonl").write_text('{"step": 0}\n')
    for f in ("metrics.json", "train_log.jsonl"):
        (out / f).write_bytes((finished / f).read_bytes())
    subprocess.run(nxt.stdout.split(" && ", 1)[1].split(" && ", 1)[1], shell=True, check=True)  # after train.py
    assert sorted(p.name for p in rec.iterdir()) == ["metrics.json", "train_log.jsonl"]
    assert "pref_lr=1e-07" not in analyze(root, "--next", "--methods", "dpo").stdout
    import shutil

    shutil.rmtree(rec)
    missing = analyze(root, "--next").stdout.splitlines()  # bce, sft and rft have no grid yet: those come first
    assert len(missing) == 4 + 3 + 3 and all("seed=0" in c and "/grid/" in c for c in missing)
    study_run(root, "extend", 0, "dpo", 1e-7, 0, val=0.6, ind=0.6, prior=0.9, chosen=-1.0)
    seeds = analyze(root, "--next", "--methods", "dpo,bco,sft_plus").stdout.splitlines()
    assert len(seeds) == 6 and sorted(c.split(" seed=")[1][0] for c in seeds) == ["1", "1", "1", "2", "2", "2"]
    assert any("method=dpo pref_lr=1e-06 seed=2" in c for c in seeds)  # 1e-7 was worse: the edge stays, once
    for s, (ind, prior) in enumerate([(0.70, 0.90), (0.71, 0.89), (0.69, 0.91)]):
        if s:
            study_run(root, "seeds_bco", s, "bco", 1e-5, s, val=0.7, ind=ind, prior=prior, chosen=0.5 + s / 100)
            study_run(root, "seeds_dpo", s, "dpo", 1e-6, s, val=0.65, ind=0.6 + s / 1000, prior=0.9, chosen=-1.0)
            study_run(root, "seeds_sft_plus", s, "sft_plus", 5e-4, s, val=0.8, ind=0.8, prior=0.5 - s / 100)
    assert analyze(root, "--next", "--methods", "dpo,bco,sft_plus").stdout.strip() == ""
    study_run(root, "again", 0, "bco", 1e-5, 1, val=0.7, ind=0.7, prior=0.9, chosen=0.5)
    twice = analyze(root)
    assert twice.returncode != 0 and "holds the same run twice (('bco', 1e-05, 1))" in twice.stderr
    shutil.rmtree(root / "again")
    study_run(root, "grid_extra", 0, "dpop", 1e-6, 0, val=0.9, ind=0.95, prior=0.9, chosen=0.2)  # a not-SPoT row
    assert "--methods: unknown dpo_pos" in analyze(root, "--next", "--methods", "dpop,dpo_pos").stderr
    out = analyze(root, "--json", str(tmp_path / "a.json"))
    assert "| dpop (not SPoT) | 1e-06 | 1 | 95.0 |" in out.stdout
    assert "dpo chose" not in out.stdout  # 1e-6 is inside the extended grid now
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "a.json").read_text())
    assert {m: c["lr"] for m, c in result["chosen"].items()} == {"bco": 1e-5, "dpo": 1e-6, "sft_plus": 5e-4,
                                                                 "dpop": 1e-6}
    v = result["verdicts"]
    assert v["H1"] == "supported"  # +10 points, tiny spread
    assert v["H3"] == "supported (no significant gain)"  # +0.1 points, below the item-level SE
    assert v["H5"] == "supported"
    assert v["H2"].startswith("not settled") and v["H4"].startswith("not settled")  # no SFT, no BCE runs
    h2 = result["tests"]["H2"]["forgetting SFT+ - BCO"]
    assert h2["verdict"] == "supported" and abs(h2["mean"] - 0.41) < 0.02
    assert "| bco | 1e-05 | 3 | 70.0 ± 0.6 |" in out.stdout
    fig = subprocess.run([sys.executable, str(ROOT / "experiments" / "study" / "figure.py"), str(tmp_path / "a.json"),
                          "--out", str(tmp_path / "f.png")], capture_output=True, text=True)
    assert fig.returncode == 0, fig.stderr
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_an_extension_that_wins_at_the_new_edge_is_not_extended_again(tmp_path):
    """V0's case: BCO chose 1e-6, the smallest rate; the extension 1e-7 did better still. The protocol extends
    once, so the next jobs are the seeds at 1e-7, and the report says the grid stops there."""
    root = tmp_path / "v0"
    for i, lr in enumerate((1e-6, 1e-5, 1e-4, 1e-3)):
        study_run(root, "grid", i, "bco", lr, 0, val=0.6 if lr == 1e-6 else 0.3, ind=0.6, prior=0.9, chosen=0.0)
    assert "pref_lr=1e-07 seed=0" in analyze(root, "--next", "--methods", "bco").stdout
    study_run(root, "extend", 0, "bco", 1e-7, 0, val=0.7, ind=0.6, prior=0.9, chosen=0.0)
    nxt = analyze(root, "--next", "--methods", "bco").stdout.splitlines()
    assert len(nxt) == 2 and all("pref_lr=1e-07" in c and "/seeds/" in c for c in nxt)
    out = analyze(root).stdout
    assert "bco chose the smallest rate (1e-07, its grid already extended once: the protocol stops there)" in out


def test_slips_are_wrong_samples_on_problems_greedy_gets_right():
    sys.path.insert(0, str(ROOT / "experiments"))
    from toy_errors import slip_shares

    from spot.toy.tasks import Problem

    p = Problem(12, (("+", 5), ("-", 3)), "Ann", "pens", ("buys", "loses"))
    q = Problem(20, (("-", 4), ("+", 1)), "Bob", "eggs", ("eats", "finds"))
    right_p, wrong_p = "12+5=17\n17-3=14\n#### 14", "12-5=7\n7-3=4\n#### 4"
    right_q, wrong_q = "20-4=16\n16+1=17\n#### 17", "20-4=15\n15+1=16\n#### 16"
    shares = slip_shares([(p.text, right_p), (q.text, wrong_q)],
                         [[wrong_p, right_p, right_p], [wrong_q, wrong_q, right_q]])
    assert shares == {"greedy_accuracy": 0.5, "sampled_accuracy": 0.5, "slip": 1 / 3, "systematic": 2 / 3}
