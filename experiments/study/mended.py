"""The toy study's verdicts with the mended statistics (PROTOCOL.md, 2026-12-06 section), all bases at once.

    python experiments/study/mended.py                       # writes experiments/study/mended.md and mended.json

Each contrast A - B is paired item by item and seed by seed, from the per-item records (`correct`) in the runs'
metrics.json: its estimate, a 95% interval and a two-sided p from a bootstrap over items and seeds, its own
item-level SE, McNemar's exact test per seed; then Holm's step-down over the whole family (every contrast of
H1-H5 of every base). A contrast with no per-item record keeps the seed-paired t test (H5's rewards; B0's
methods whose run directories were lost, from the surviving analysis.json). The pre-registered verdicts
(analyze.py) are printed beside the mended ones.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyze import METHODS, analyze, read_runs  # noqa: E402
from compact import items  # noqa: E402

STUDY = Path(__file__).resolve().parent
IN_DOMAIN = ("toy_in_domain",)
PRIOR = ("toy_prior_fact", "toy_prior_next", "toy_prior_first")  # the prior group: the mean of its suites
MARGIN = 0.02  # H3's equivalence margin, in accuracy (2 points)
B = 10_000
T2 = {1: 12.706, 2: 4.303, 3: 3.182}


def load_items(run_dir: str) -> dict:
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {"trained": items(m["trained"]["correct"]), "base": items(m["base"]["correct"]),
            "val": m.get("paired", {}).get("toy_val_in_domain")}


def student_p(t: float, df: int) -> float:
    """Two-sided p of Student's t with df degrees of freedom (closed forms for 1 and 2, enough here)."""
    if math.isinf(t):
        return 0.0
    if df == 1:
        return 1 - 2 * math.atan(abs(t)) / math.pi
    if df == 2:
        return 1 - abs(t) / math.sqrt(2 + t * t)
    raise ValueError(f"df {df}")


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict:
    gained, lost = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    n, k = gained + lost, min(gained, lost)
    p = min(1.0, 2 * sum(math.comb(n, j) for j in range(k + 1)) / 2 ** n) if n else 1.0
    return {"gained": gained, "lost": lost, "p": p}


def item_contrast(a: dict[int, dict], b: dict[int, dict], suites: tuple[str, ...], sign: int,
                  rng: np.random.Generator) -> dict:
    """a, b: seed -> correct lists by suite (the base: its one record at every seed), paired on the seeds both
    have. The suites weigh equally (a group's accuracy is the mean of its suites'), items resampled within each."""
    seeds = sorted(s for s in a if s in b)
    rec_b = b.__getitem__
    diffs = [np.array([np.array(a[s][k], float) - np.array(rec_b(s)[k], float) for s in seeds]) for k in suites]
    est = float(np.mean([x.mean() for x in diffs]))
    n_s = len(seeds)
    w_seed = rng.multinomial(n_s, [1 / n_s] * n_s, size=B).astype(float)  # (B, S): seed draws
    boot = np.zeros(B)
    for x in diffs:  # (S, n)
        n = x.shape[1]
        w_item = rng.multinomial(n, [1 / n] * n, size=B).astype(float)  # (B, n)
        boot += ((w_seed @ x) * w_item).sum(1) / (n_s * n)
    boot /= len(diffs)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    lo90, hi90 = np.quantile(boot, [0.05, 0.95])
    p = max(1 / B, min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    # the contrast's own item-level SE: the SE of the seed-averaged item differences, suites weighed equally
    se = math.sqrt(sum(x.mean(0).var(ddof=1) / x.shape[1] for x in diffs)) / len(diffs)
    per_seed = [mcnemar(np.concatenate([np.array(a[s][k]) for k in suites]),
                        np.concatenate([np.array(rec_b(s)[k]) for k in suites])) for s in seeds]
    return {"kind": "items x seeds", "seeds": seeds, "mean": est, "ci95": [float(lo), float(hi)],
            "ci90": [float(lo90), float(hi90)], "item_se": se, "p": float(p), "mcnemar": per_seed, "sign": sign}


def seed_contrast(d: list[float], sign: int) -> dict:
    """The seed-paired t test (no per-item record): d the per-seed differences."""
    n = len(d)
    m = sum(d) / n
    if n < 2:
        return {"kind": "one seed", "mean": m, "p": 1.0, "sign": sign}
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1)) / math.sqrt(n)
    if se == 0:  # equal differences at every seed: the seeds carry no test (the old t = infinity)
        return {"kind": "seeds (t): zero variance", "mean": m, "se": 0.0, "p": None, "sign": sign}
    half = T2[n - 1] * se
    return {"kind": "seeds (t)", "mean": m, "ci95": [m - half, m + half], "se": se, "t": m / se,
            "p": student_p(m / se, n - 1), "sign": sign}


def from_summary(test: dict, sign: int) -> dict:
    """A contrast of B0's surviving analysis.json (mean, seed SE, t; the per-seed values were lost)."""
    m, se = test["mean"], test.get("se")
    if not se:  # no seed SE, or equal differences at every seed (the old t = infinity): no test
        return {"kind": "seeds (t, analysis.json): zero variance", "mean": m, "se": se, "p": None, "sign": sign}
    half = T2[test["n"] - 1] * se
    return {"kind": "seeds (t, analysis.json)", "mean": m, "se": se, "t": m / se, "p": student_p(m / se, test["n"] - 1),
            "sign": sign, "ci95": [m - half, m + half]}


def holm(tests: list[dict]) -> None:
    """Holm's step-down: writes "p_holm" into each test."""
    tests = [t for t in tests if t["p"] is not None]  # an untestable contrast is in no family
    order = sorted(range(len(tests)), key=lambda i: tests[i]["p"])
    m, running = len(tests), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * tests[i]["p"]))
        tests[i]["p_holm"] = running


def verdict(t: dict, h3: bool = False) -> str:
    if t["p"] is None:
        return "no test (zero seed variance, no per-item record)"
    agree = t["mean"] * t["sign"] > 0
    significant = t["p_holm"] < 0.05
    if h3:  # predicts no gain: an equivalence test within the margin, and a gain refutes
        ci = t.get("ci90")
        equivalent = ci is not None and -MARGIN < ci[0] and ci[1] < MARGIN
        return ("refuted (significant gain)" if significant and t["mean"] > 0 else
                "supported (equivalent within 2 points)" if equivalent else
                "significant loss" if significant else "inconclusive")
    return "supported" if significant and agree else "refuted" if significant else "inconclusive"


def base_family(name: str, runs_root: Path | None, extra_root: Path | None, rng) -> dict:
    """The contrasts of one base: per-item where records exist, else the surviving summary."""
    if runs_root is not None:
        runs = read_runs(runs_root)
        pre = analyze(runs)
    else:  # B0: the chosen rates and tests from analysis.json, per-item records only for the recreated runs
        pre = json.loads((STUDY / name / "analysis.json").read_text())
        runs = read_runs(extra_root, allow_none=True, pattern="*/metrics.json")  # rerun.sh b0: b0/<job>/metrics.json
    chosen = {m: c["lr"] for m, c in pre["chosen"].items()}
    items: dict[str, dict[int, dict]] = {}
    rewards: dict[str, dict[int, float]] = {}
    base_items = None
    for r in runs:
        if r["method"] in chosen and math.isclose(r["lr"], chosen[r["method"]]):
            rec = load_items(r["dir"])
            items.setdefault(r["method"], {})[r["seed"]] = rec["trained"]
            rewards.setdefault(r["method"], {})[r["seed"]] = r["chosen"]
            base_items = base_items or rec["base"]
    old = {label: t for tests in pre["tests"].values() for label, t in tests.items()}

    def pair(label: str, a: str, b: str | None, suites, sign: int, key_b=None) -> dict:
        if a in items and (b is None or b in items):
            other = {s: base_items for s in items[a]} if b is None else items[b]  # the base: the same at every seed
            t = item_contrast(items[a], other, suites, sign, rng)
        else:
            t = from_summary(old[label], sign)
        return {**t, "label": label, "old": old.get(label, {}).get("verdict")}

    tests = {
        "H1": [pair("BCO in-domain - base", "bco", None, IN_DOMAIN, +1)],
        # forgetting A - forgetting B = prior B - prior A: the prior items, B's minus A's
        "H2": [pair("forgetting SFT+ - BCO", "bco", "sft_plus", PRIOR, +1),
               pair("forgetting SFT - BCO", "bco", "sft", PRIOR, +1)],
        "H3": [pair("DPO in-domain - base", "dpo", None, IN_DOMAIN, +1)],
        "H4": [pair(f"prior BCE - {m}", "bce", m, PRIOR, +1) for m in METHODS if m != "bce"],
    }
    a, b = rewards.get("bco", {}), rewards.get("dpo", {})
    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
    h5 = seed_contrast([a[s] - b[s] for s in seeds], +1) if seeds else from_summary(
        old["chosen reward BCO - DPO"], +1)
    tests["H5"] = [{**h5, "label": "chosen reward BCO - DPO", "old": old["chosen reward BCO - DPO"]["verdict"]}]
    # "do not train": the chosen rate's seed-0 validation gain over the base within its own item SE
    no_train = {}
    for r in runs:
        if r["method"] in chosen and math.isclose(r["lr"], chosen[r["method"]]) and r["seed"] == 0:
            v = load_items(r["dir"])["val"]
            if v:
                no_train[r["method"]] = v["delta"] <= v["se"]
    return {"name": name, "tests": tests, "chosen": chosen, "no_train": no_train,
            "old_verdicts": pre["verdicts"], "base_ok": pre.get("base_criteria", {})}


def combine(name: str, tests: list[dict]) -> str:
    vs = [t["verdict"] for t in tests]
    if name == "H3":
        return vs[0]
    if any(v.startswith("refuted") for v in vs):
        return "refuted"
    if any(v.startswith("no test") for v in vs):
        return "not settled (a contrast has no test)"
    return "supported" if all(v == "supported" for v in vs) else "inconclusive"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


def pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def render(families: list[dict]) -> str:
    lines = ["# The toy study's verdicts, mended statistics", "",
             "Written by `python experiments/study/mended.py` (PROTOCOL.md, 2026-12-06 section). Differences in "
             "accuracy points (H5: reward units); 95% interval from the item x seed bootstrap (seed t where no "
             "per-item record exists); Holm over all contrasts below.", ""]
    for f in families:
        lines += [f"## {f['name'].upper()}", "",
                  "| hypothesis | contrast | from | estimate | 95% interval | item SE | McNemar per seed "
                  "(gained/lost, p) | p | Holm p | mended verdict | pre-registered |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for h, tests in f["tests"].items():
            scale = (lambda x: f"{x:+.4f}") if h == "H5" else pts
            for t in tests:
                ci = f"[{scale(t['ci95'][0])}, {scale(t['ci95'][1])}]" if t.get("ci95") else "-"
                ise = f"{100 * t['item_se']:.2f}" if t.get("item_se") is not None else "-"
                mc = "; ".join(f"{m['gained']}/{m['lost']}, {m['p']:.2g}" for m in t.get("mcnemar", [])) or "-"
                lines.append(f"| {h} | {t['label']} | {t['kind']} | {scale(t['mean'])} | {ci} | {ise} | {mc} | "
                             f"{fmt_p(t['p'])} | {fmt_p(t.get('p_holm'))} | {t['verdict']} | {t['old']} |")
        lines += ["", "Hypotheses, mended: " + "; ".join(f"**{h}** {v}" for h, v in f["verdicts"].items()),
                  "", "Pre-registered: " + "; ".join(f"**{h}** {v}" for h, v in f["old_verdicts"].items())]
        flagged = sorted(m for m, v in f["no_train"].items() if v)
        checked = sorted(f["no_train"])
        lines += ["", f"Do-not-train check (seed-0 validation gain within its item SE), methods with a record: "
                  f"{', '.join(checked) or 'none'}; flagged: {', '.join(flagged) or 'none'}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=STUDY / "mended.md")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    families = []
    for name in ("b0", "v0", "b1"):
        if name == "b0":
            families.append(base_family(name, None, STUDY / "b0", rng))
        else:
            families.append(base_family(name, STUDY / name / "runs", None, rng))
    every = [t for f in families for tests in f["tests"].values() for t in tests]
    holm(every)
    for f in families:
        for h, tests in f["tests"].items():
            for t in tests:
                t["verdict"] = verdict(t, h3=h == "H3")
        f["verdicts"] = {h: combine(h, tests) for h, tests in f["tests"].items()}
        if not all(f["base_ok"].values()):
            f["verdicts"] = {k: v + " (base outside the criteria)" for k, v in f["verdicts"].items()}
    a.out.write_text(render(families))
    a.out.with_suffix(".json").write_text(json.dumps(families, indent=1, default=float) + "\n")
    print(a.out.read_text())


if __name__ == "__main__":
    main()
