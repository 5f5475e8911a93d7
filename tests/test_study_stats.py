"""experiments/study/mended.py: the toy study's mended statistics (item x seed bootstrap, McNemar, Holm, the
zero-variance case) and compact.py's per-item records."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "study"


def load(name: str):
    sys.path.insert(0, str(STUDY))
    try:
        spec = importlib.util.spec_from_file_location(f"study_{name}", STUDY / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(STUDY))


mended, compact = load("mended"), load("compact")


def records(n: int, gained: int, lost: int, base_right: int) -> tuple[list[int], list[int]]:
    """A trained run and the base on n items: the base gets the first `base_right` right; the run gains `gained`
    of the base's wrong items and loses `lost` of its right ones."""
    base = [1] * base_right + [0] * (n - base_right)
    run = list(base)
    for i in range(lost):
        run[i] = 0
    for i in range(gained):
        run[base_right + i] = 1
    return run, base


def test_mcnemar_is_the_exact_two_sided_binomial_test():
    a, b = np.array(records(100, 7, 5, 50)[0]), np.array(records(100, 7, 5, 50)[1])
    result = mended.mcnemar(a, b)
    assert (result["gained"], result["lost"]) == (7, 5)
    assert result["p"] == pytest.approx(2 * sum(math.comb(12, j) for j in range(6)) / 2 ** 12)  # 0.774
    assert mended.mcnemar(np.array([1, 1]), np.array([1, 1]))["p"] == 1.0  # no discordant item


def test_holm_adjusts_in_step_down_order_and_leaves_untestable_contrasts_out():
    tests = [{"p": 0.01}, {"p": 0.04}, {"p": 0.03}, {"p": 0.2}, {"p": None}]
    mended.holm(tests)
    assert [t["p_holm"] for t in tests[:4]] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert "p_holm" not in tests[4]


def test_a_zero_variance_contrast_is_no_longer_support_but_a_real_effect_is():
    rng = np.random.default_rng(0)
    run, base = records(1000, 7, 5, 216)  # V0's H1: 7 items gained and 5 lost at every seed
    same = {s: {"toy_in_domain": run} for s in range(3)}
    small = mended.item_contrast(same, {s: {"toy_in_domain": base} for s in range(3)}, ("toy_in_domain",), +1, rng)
    assert small["mean"] == pytest.approx(0.002)
    assert small["ci95"][0] < 0 < small["ci95"][1] and small["p"] > 0.3
    assert [m["gained"] for m in small["mcnemar"]] == [7, 7, 7]
    # the seed t test on the same three equal differences: no test at all (the old verdict was t = infinity)
    assert mended.seed_contrast([0.002, 0.002, 0.002], +1)["p"] is None
    big = {s: {"toy_in_domain": records(1000, 55 + s, 20, 890)[0]} for s in range(3)}  # B1's H1, roughly
    base_record = {s: {"toy_in_domain": records(1000, 0, 0, 890)[1]} for s in range(3)}
    strong = mended.item_contrast(big, base_record, ("toy_in_domain",), +1, rng)
    assert strong["p"] < 0.01 and strong["ci95"][0] > 0
    # the contrast's own item SE: that of the seed-averaged item differences
    diff = np.mean([np.array(big[s]["toy_in_domain"]) - np.array(records(1000, 0, 0, 890)[1]) for s in range(3)], 0)
    assert strong["item_se"] == pytest.approx(diff.std(ddof=1) / math.sqrt(1000))
    for t in (small, strong):
        t["p_holm"] = t["p"]
    assert mended.verdict(small) == "inconclusive" and mended.verdict(strong) == "supported"
    assert mended.verdict(small, h3=True) == "supported (equivalent within 2 points)"
    assert mended.verdict(strong, h3=True) == "refuted (significant gain)"


def test_compact_records_keep_every_item():
    metrics = {"trained": {"correct": {"a": [1, 0, 1], "b": [0]}}, "base": {"correct": {"a": [0, 0, 1], "b": [1]}},
               "run": {"method": "bco"}}
    small = compact.compact(metrics)
    assert small["trained"]["correct"] == {"a": "101", "b": "0"} and small["run"] == {"method": "bco"}
    assert compact.items(small["base"]["correct"]) == metrics["base"]["correct"]
    assert compact.items(metrics["trained"]["correct"]) == metrics["trained"]["correct"]  # lists pass through


def test_the_kl_path_rule_says_coincide_only_when_every_rate_was_run_and_agrees():
    path = load("path")
    base = 0.89
    close = {("dpo", 3e-5): 0.91, ("bce", 3e-5): 0.915, ("bco", 3e-5): 0.92,  # within 2 points
             ("dpo", 5e-5): 0.60, ("bce", 5e-5): 0.70, ("bco", 5e-5): 0.65}  # all below the base
    assert path.coincide(close, base, [3e-5, 5e-5])["coincide"] is True
    apart = {**close, ("bco", 5e-5): 0.93}  # BCO ends above the base and 23 points from DPO
    verdict = path.coincide(apart, base, [3e-5, 5e-5])
    assert verdict["coincide"] is False and "apart by 33.0 points" in verdict["text"]
    partial = {k: v for k, v in close.items() if k[1] == 3e-5}
    assert path.coincide(partial, base, [3e-5, 5e-5])["coincide"] is None  # a rate not run settles nothing
