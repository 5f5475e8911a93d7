"""The study's tables and verdicts for one base, from its run directories (PROTOCOL.md, "What counts as support").

    python experiments/study/analyze.py experiments/study/v0/runs                  # table + H1-H5 for base V0
    python experiments/study/analyze.py experiments/study/v0/runs --next \
        --work multirun/study/v0 --model assets/study-v0 --toy-data data/study/v0  # the runs still to make
    python experiments/study/analyze.py experiments/study/v0/runs --json out.json  # the numbers, for the figure

Reads every `<dir>/*/*/metrics.json` (the grid sweeps and the seed sweeps): the study's record, kept in git. A
job runs under `--work` (checkpoints, policy, samples: large, not kept) and, once it has finished, leaves its
metrics.json and train_log.jsonl (the reward and KL curves) in the record, so the study resumes in any later
checkout from what was committed. Per method, the learning rate is the
one with the best validation in-domain accuracy at seed 0 (ties: the smaller rate); the method's row is the
mean over the seeds run at that rate, with its standard error over seeds. Contrasts are paired by seed, t with
n-1 degrees of freedom; the verdict needs |t| beyond the two-sided 5% point (4.30 at three seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: the selection rule of select_lr.py
from select_lr import best_rate, grid_edge  # noqa: E402

METHODS = ("sft", "rft", "sft_plus", "dpo", "bce", "bco")
EXTRA = ("dpo_nll", "bco_nll", "dpop")  # not SPoT (PROTOCOL.md, 2026-12-02 second section): rows, in no test
PREF = ("dpo", "bce", "bco", *EXTRA)
GRIDS = {"pref_lr": (1e-6, 1e-5, 1e-4, 1e-3), "sft_lr": (5e-5, 5e-4, 5e-3)}  # PROTOCOL.md, "Runs"
EV = "eval=[toy,toy_val,toy_ood_names,toy_ood_long]"
T_CRIT = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57}  # two-sided 5%, by degrees of freedom
COLUMNS = (("in_domain", "in-domain"), ("ood_names", "OOD (names)"), ("ood", "OOD (old)"),
           ("ood_long", "OOD (5 steps)"), ("prior", "prior"), ("forgetting", "forgetting"))


def read_runs(root: Path, allow_none: bool = False, pattern: str = "*/*/metrics.json") -> list[dict]:
    runs = []
    for path in sorted(root.glob(pattern)):
        if path.parent.name.endswith(".tmp"):  # a record being copied, or left half-made by a kill
            continue
        m = json.loads(path.read_text())
        groups, train = m["trained"]["groups"], m.get("train", {})
        runs.append({"dir": str(path.parent), "method": m["run"]["method"], "lr": m["run"]["lr"],
                     "seed": m["run"]["seed"], "model": m["run"]["model"], "base": m["base"]["groups"],
                     **{k: groups.get(k) for k, _ in COLUMNS if k != "forgetting"}, "val": groups.get("val"),
                     "forgetting": m["delta"]["forgetting"], "kl": train.get("val/kl"),
                     "chosen": train.get("val/rewards/chosen"), "rejected": train.get("val/rewards/rejected"),
                     "item_se": {s: v["se"] for s, v in m.get("paired", {}).items()}})
    if not runs and not allow_none:
        sys.exit(f"error: no */*/metrics.json under {root}")
    models = {r["model"] for r in runs}
    jobs = [(r["method"], r["lr"], r["seed"]) for r in runs]
    if len(jobs) != len(set(jobs)):
        twice = sorted({j for j in jobs if jobs.count(j) > 1})
        sys.exit(f"error: {root} holds the same run twice ({twice[0]}): keep one directory per method, rate, seed")
    if len(models) > 1:
        sys.exit(f"error: {root} mixes runs of several bases ({', '.join(sorted(models))}): one base a directory")
    return runs


def choose(runs: list[dict]) -> dict[str, dict]:
    """method -> {"lr", "grid", "edge"}: the seed-0 run with the best validation accuracy, ties to the smaller
    rate (experiments/select_lr.py's rule)."""
    chosen = {}
    for method in METHODS + EXTRA:
        grid = sorted((r for r in runs if r["method"] == method and r["seed"] == 0), key=lambda r: r["lr"])
        if not grid:
            continue
        best = best_rate(grid)
        chosen[method] = {"lr": best["lr"], "grid": [(r["lr"], r["val"], r["in_domain"], r["prior"]) for r in grid],
                          "edge": grid_edge([r["lr"] for r in grid], best["lr"])}
    return chosen


def mean_se(xs: list[float]) -> tuple[float, float | None]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def contrast(a: dict[int, float], b: dict[int, float] | float, sign: int = 1) -> dict:
    """Paired by seed: d_s = a_s - b_s (b a number: the base). sign=+1 predicts d > 0, -1 predicts d < 0."""
    seeds = sorted(s for s in a if isinstance(b, int | float) or s in b)
    d = [a[s] - (b if isinstance(b, int | float) else b[s]) for s in seeds]
    if not d:
        return {"n": 0, "verdict": "not run"}
    m, se = mean_se(d)
    n = len(d)
    if n < 2:
        return {"n": n, "mean": m, "se": None, "t": None, "verdict": "one seed only"}
    t = math.copysign(math.inf, m) if se == 0 and m != 0 else (0.0 if se == 0 else m / se)
    crit = T_CRIT.get(n - 1, 2.0)
    verdict = ("supported" if sign * t > crit else "refuted" if sign * t < -crit else "inconclusive")
    return {"n": n, "mean": m, "se": se, "t": t, "verdict": verdict}


def by_seed(runs: list[dict], method: str, lr: float, key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in runs if r["method"] == method and r["lr"] == lr and r[key] is not None}


def analyze(runs: list[dict]) -> dict:
    chosen = choose(runs)
    base = runs[0]["base"]
    base_ok = {"in_domain": 0.2 <= base["in_domain"] <= 0.9, "ood_names": 0.1 <= base.get("ood_names", 0) <= 0.8,
               "prior": base["prior"] >= 0.8}
    rows = {}
    for method, c in chosen.items():
        mine = [r for r in runs if r["method"] == method and r["lr"] == c["lr"]]
        rows[method] = {"lr": c["lr"], "seeds": sorted(r["seed"] for r in mine)}
        for key in [k for k, _ in COLUMNS] + ["kl", "chosen", "rejected"]:
            xs = [r[key] for r in mine if r[key] is not None]
            rows[method][key] = mean_se(xs) if xs else None
    s = lambda m, k: by_seed(runs, m, chosen[m]["lr"], k) if m in chosen else {}
    item_se = [r["item_se"].get("toy_in_domain") for r in runs if r["item_se"].get("toy_in_domain")]
    h = {
        "H1": {"BCO in-domain - base": contrast(s("bco", "in_domain"), base["in_domain"], +1)},
        "H2": {"forgetting SFT+ - BCO": contrast(s("sft_plus", "forgetting"), s("bco", "forgetting"), +1),
               "forgetting SFT - BCO": contrast(s("sft", "forgetting"), s("bco", "forgetting"), +1)},
        "H3": {"DPO in-domain - base": contrast(s("dpo", "in_domain"), base["in_domain"], +1)},
        "H4": {f"prior BCE - {m}": contrast(s("bce", "prior"), s(m, "prior"), +1) for m in METHODS if m != "bce"},
        "H5": {"chosen reward BCO - DPO": contrast(s("bco", "chosen"), s("dpo", "chosen"), +1)},
    }
    # H3 predicts no gain: its contrast is read as a change, not as support for a gain
    h3 = h["H3"]["DPO in-domain - base"]
    if h3["verdict"] in ("supported", "refuted", "inconclusive"):
        h3["verdict"] = {"supported": "significant gain", "refuted": "significant loss",
                         "inconclusive": "no significant change"}[h3["verdict"]]
    verdicts = {}
    for name, tests in h.items():
        vs = [t["verdict"] for t in tests.values()]
        unsettled = [v for v in vs if v in ("not run", "one seed only")]
        if name == "H3":
            small = not item_se or h3.get("mean", 0) < sum(item_se) / len(item_se)
            verdicts[name] = ("not settled (" + vs[0] + ")" if unsettled else "refuted" if vs[0] == "significant gain"
                              else "supported (no significant gain)" if small or vs[0] == "significant loss"
                              else "inconclusive")
        elif "refuted" in vs:  # H2, H4: refuted when any contrast is; one contrast, the others alike
            verdicts[name] = "refuted"
        elif unsettled:
            verdicts[name] = "not settled (" + ", ".join(sorted(set(unsettled))) + ")"
        else:
            verdicts[name] = "supported" if all(v == "supported" for v in vs) else "inconclusive"
    if not all(base_ok.values()):
        verdicts = {k: v + " (base outside the criteria)" for k, v in verdicts.items()}
    return {"base": base, "base_criteria": base_ok, "chosen": chosen, "rows": rows, "tests": h,
            "verdicts": verdicts, "item_se_in_domain": sum(item_se) / len(item_se) if item_se else None}


def pct(x, se=None) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")


def report(result: dict, name: str) -> str:
    base = result["base"]
    lines = [f"### {name}", ""]
    crit = ", ".join(f"{k} {'ok' if v else 'OUT'}" for k, v in result["base_criteria"].items())
    lines.append(f"Base criteria: {crit}. Item-level paired SE of an in-domain change: "
                 f"{pct(result['item_se_in_domain'])} points.")
    lines.append("")
    head = "| method | lr | seeds | " + " | ".join(t for _, t in COLUMNS) + " | KL (val) | chosen reward |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    lines.append("| Base | - | - | " + " | ".join(pct(base.get(k)) if k != "forgetting" else "-"
                                                   for k, _ in COLUMNS) + " | - | - |")
    for method, row in result["rows"].items():
        cells = [pct(*row[k]) if row[k] else "-" for k, _ in COLUMNS]
        kl = f"{row['kl'][0]:.3f}" if row["kl"] else "-"
        ch = f"{row['chosen'][0]:+.3f}" if row["chosen"] else "-"
        label = f"{method} (not SPoT)" if method in EXTRA else method
        lines.append(f"| {label} | {row['lr']:g} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {kl} | {ch} |")
    lines += ["", "| hypothesis | contrast | mean | SE (seeds) | t | verdict |", "|---|---|---|---|---|---|"]
    for hname, tests in result["tests"].items():
        for label, t in tests.items():
            scale, digits = (1, 4) if "reward" in label else (100, 2)
            mean = f"{scale * t['mean']:+.{digits}f}" if "mean" in t else "-"
            se = f"{scale * t['se']:.{digits}f}" if t.get("se") is not None else "-"
            tt = f"{t['t']:.1f}" if t.get("t") is not None else "-"
            lines.append(f"| {hname} | {label} | {mean} | {se} | {tt} | {t['verdict']} |")
    lines += ["", "Verdicts: " + "; ".join(f"**{k}** {v}" for k, v in result["verdicts"].items())]
    lines += ["", "Learning-rate selection (seed 0; chosen = best validation in-domain, ties to the smaller rate):", "",
              "| method | lr | validation | test in-domain | prior | chosen |", "|---|---|---|---|---|---|"]
    for method, c in result["chosen"].items():
        for lr, val, ind, prior in c["grid"]:
            lines.append(f"| {method} | {lr:g} | {pct(val)} | {pct(ind)} | {pct(prior)} | "
                         f"{'yes' if lr == c['lr'] else ''} |")
    edges = [f"{m} chose the {c['edge']} rate ({c['lr']:g}"
             + (", its grid already extended once: the protocol stops there)" if extended(m, c) else ")")
             for m, c in result["chosen"].items() if c["edge"]]
    if edges:
        lines += ["", "At a grid edge: " + "; ".join(edges) + " (PROTOCOL.md: a grid is extended once past it)."]
    return "\n".join(lines)


KEPT = ("metrics.json", "train_log.jsonl")  # what a finished job leaves in the record


def extended(method: str, chosen: dict) -> bool:
    """Whether the method's seed-0 grid already holds more rates than the protocol's (it was extended once)."""
    return len(chosen["grid"]) > len(GRIDS["pref_lr" if method in PREF else "sft_lr"])


def next_commands(runs: list[dict], root: Path, model: str, toy_data: str, methods=METHODS,
                  work: Path | None = None) -> list[str]:
    """The runs the protocol asks for next, one job a command: the grids at seed 0 first; then a grid extended
    one decade past an edge its method chose (once); then seeds 1 and 2 at each chosen rate. Nothing when every
    method has its three seeds. A job is known by (method, rate, seed) wherever it sits under `root`, so a rerun
    after a kill makes only the jobs that left no record. A job runs in `work`/<phase>/<job> (cleared first) and,
    when `work` is not the record itself, copies KEPT into `root`/<phase>/<job> (whole or not at all)."""
    common = f'"{EV}" logger=csv model.path={model} toy_data={toy_data} experiment_name=study'
    have = {(r["method"], r["lr"], r["seed"]) for r in runs}
    work = root if work is None else work

    def job(phase: str, m: str, lr: float, seed: int) -> str:
        knob = "pref_lr" if m in PREF else "sft_lr"
        name = f"{phase}/{m}_lr{lr:g}_s{seed}"
        out, rec = work / name, root / name
        cmd = f"rm -rf {out} && python train.py method={m} {knob}={lr:g} seed={seed} {common} hydra.run.dir={out}"
        if out != rec:  # the record: a temporary directory moved into place, so a kill leaves none half-made
            cmd += (f" && rm -rf {rec}.tmp && mkdir -p {rec}.tmp && cp {' '.join(f'{out}/{k}' for k in KEPT)} "
                    f"{rec}.tmp/ && mv {rec}.tmp {rec}")
        return cmd

    grid = [job("grid", m, lr, 0) for m in methods
            for lr in GRIDS["pref_lr" if m in PREF else "sft_lr"] if (m, lr, 0) not in have]
    if grid:
        return grid
    chosen = choose(runs)
    extend, seeds = [], []
    for m, c in chosen.items():
        if m not in methods:
            continue
        if c["edge"] and not extended(m, c):
            extend.append(job("extend", m, c["lr"] / 10 if c["edge"] == "smallest" else c["lr"] * 10, 0))
        else:
            seeds += [job("seeds", m, c["lr"], s) for s in (1, 2) if (m, c["lr"], s) not in have]
    return extend or seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="the base's record of runs, e.g. experiments/study/v0/runs")
    ap.add_argument("--name", default=None, help="the base's name in the table (default: the directory's)")
    ap.add_argument("--next", action="store_true", help="print the runs still to make, one command a line")
    ap.add_argument("--model", default=None, help="for --next: the base model (default: the runs')")
    ap.add_argument("--toy-data", default="data/toy", help="for --next: the base's rectify out_dir")
    ap.add_argument("--work", type=Path, default=None,
                    help="for --next: where the jobs run (default: in the record itself)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"for --next: only these (two streams at once; the not-SPoT rows: {','.join(EXTRA)})")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    a = ap.parse_args()
    unknown = sorted(set(a.methods.split(",")) - set(METHODS + EXTRA))
    if unknown:
        ap.error(f"--methods: unknown {', '.join(unknown)}; the study's are {','.join(METHODS + EXTRA)}")
    runs = read_runs(a.root, allow_none=a.next)
    if a.next:
        model = a.model or (runs[0]["model"] if runs else None)
        if model is None:
            ap.error(f"--next: {a.root} holds no run yet, so say which base with --model")
        print("\n".join(next_commands(runs, a.root, model, a.toy_data, a.methods.split(","), a.work)))
        return
    result = analyze(runs)
    print(report(result, a.name or a.root.name))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
