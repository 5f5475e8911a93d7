"""Runs side by side: read the metrics.json and curves of train.py (or evaluate.py) runs, make the table.

A run is a directory with metrics.json; beside it, when present, train_log.jsonl (train/* and val/* per step),
eval_log.jsonl (the evaluation callback's eval/* per step) and .hydra/config.yaml (what metrics.json does not
record, such as an ablation's gamma or n_pairs). Runs that differ only in their seed form one row: the mean.
Runs scored on different item counts (metrics.json "n": one with eval.limit=20, one on the whole suite) are
never averaged together: each count gets its own row, Base included, labelled with the counts.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

from spot.errors import UserError

log = logging.getLogger(__name__)

METHOD_ORDER = ("sft", "rft", "sft_plus", "dpo", "reward_sft", "bce", "bco",  # the paper's table order,
                "dpo_nll", "bco_nll", "dpop")  # then the not-SPoT rows of spot.losses
PARAMS = ("method", "loss", "beta", "weight", "gamma", "n_pairs", "reward_shift", "lr", "data", "model", "experiment")
GROUPS = ("in_domain", "ood", "prior")


class ReportError(UserError):
    """Nothing to report on, or a run that cannot be read; the message names the path."""


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Run:
    path: Path
    metrics: dict
    config: dict = field(default_factory=dict)
    train_log: list[dict] = field(default_factory=list)
    eval_log: list[dict] = field(default_factory=list)

    @property
    def params(self) -> dict:
        """What distinguishes this run: metrics.json's run info, plus ablation keys from its Hydra config."""
        info = dict(self.metrics.get("run", {}))
        for key in ("gamma", "n_pairs"):
            if key in self.config:
                info[key] = self.config[key]
        return {k: info.get(k) for k in PARAMS} | {"seed": info.get("seed")}

    @property
    def method(self) -> str:
        return str(self.params["method"] or self.path.name)


def load_run(path: Path) -> Run:
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{path / 'metrics.json'}: not valid JSON ({e.msg}); did the run finish?") from None
    if "trained" not in metrics:
        raise ReportError(f"{path / 'metrics.json'}: no 'trained' scores; not a train.py/evaluate.py output")
    cfg_file = path / ".hydra" / "config.yaml"
    config = yaml.safe_load(cfg_file.read_text()) if cfg_file.exists() else {}
    return Run(path, metrics, config or {}, read_jsonl(path / "train_log.jsonl"), read_jsonl(path / "eval_log.jsonl"))


def find_runs(paths: list[Path]) -> list[Run]:
    """Run directories given directly, or every run below a sweep directory (multirun/<date>/<time>)."""
    dirs: list[Path] = []
    for p in paths:
        if not p.exists():
            raise ReportError(f"{p} does not exist")
        if (p / "metrics.json").exists():
            dirs.append(p)
            continue
        found = sorted({m.parent for m in p.rglob("metrics.json")} - {p / "report"})
        found = [d for d in found if not any(o != d and o in d.parents for o in found)]  # not a run's eval/
        if not found:
            raise ReportError(f"{p}: no metrics.json in it or below it (give a train.py run directory or a "
                              "sweep directory such as multirun/<date>/<time>)")
        dirs += found
    return [load_run(d) for d in dirs]


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def item_labels(runs: list[Run]) -> dict[Path, str]:
    """{run path: its item counts, on the suites whose count differs between the runs}, e.g.
    "toy_in_domain 20 items"; "" for every run when all were scored on the same counts."""
    counts = [r.metrics.get("n") or {} for r in runs]
    suites = sorted({s for n in counts for s in n})
    varying = [s for s in suites if len({n.get(s) for n in counts}) > 1]
    return {r.path: ", ".join(f"{s} {n[s]:,} items" if s in n else f"{s} not scored" for s in varying)
            for r, n in zip(runs, counts, strict=True)}


def label_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """{row label: runs}. Runs differing only in seed share a row; a method that appears with several
    settings gets them in its label, e.g. `bco (beta=0.05)`, and so do item counts that differ (a mean over
    runs scored on other items would be neither's score)."""
    items = item_labels(runs)
    by_setting: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(sorted((k, str(v)) for k, v in run.params.items() if k != "seed")) + (("items", items[run.path]),)
        by_setting.setdefault(key, []).append(run)
    by_method: dict[str, list[tuple]] = {}
    for key, group in by_setting.items():
        by_method.setdefault(group[0].method, []).append(key)
    labels: dict[str, list[Run]] = {}
    for method, keys in by_method.items():
        varying = [k for k in (*PARAMS, "items") if k != "method" and len({dict(key).get(k) for key in keys}) > 1]
        for key in keys:
            extra = ", ".join(dict(key)[k] if k == "items" else f"{k}={dict(key)[k]}" for k in varying)
            labels[f"{method} ({extra})" if extra else method] = by_setting[key]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    return dict(sorted(labels.items(), key=lambda kv: (order.get(kv[1][0].method, len(order)), kv[0])))


def base_rows(runs: list[Run]) -> list[dict]:
    """The Base row: the mean of every run's base scores, one row per set of item counts (68.4% on 1,000
    items and 70.0% on 20 are two measurements, not a 69.2% base), most items first."""
    items = item_labels(runs)
    by_items: dict[str, list[Run]] = {}
    for run in runs:
        if "base" in run.metrics:
            by_items.setdefault(items[run.path], []).append(run)
    total = lambda group: -sum((group[0].metrics.get("n") or {}).values())
    rows = []
    for label, group in sorted(by_items.items(), key=lambda kv: (total(kv[1]), kv[0])):
        bases = [r.metrics["base"]["groups"] for r in group]
        rows.append({"label": f"Base ({label})" if label else "Base", "method": "base", "runs": len(bases),
                     **{g: _mean([b.get(g) for b in bases]) for g in GROUPS}})
    return rows


def table_rows(runs: list[Run]) -> list[dict]:
    """Base rows first (base_rows), then one row per label: group accuracies, in-domain gain and forgetting
    (base prior minus trained prior), each averaged over the label's runs."""
    rows = base_rows(runs)
    for label, group in label_runs(runs).items():
        trained = [r.metrics["trained"]["groups"] for r in group]
        deltas = [r.metrics.get("delta", {}) for r in group]
        rows.append({"label": label, **{k: v for k, v in group[0].params.items() if k != "seed"},
                     "runs": len(group), **{g: _mean([t.get(g) for t in trained]) for g in GROUPS},
                     "delta_in_domain": _mean([d.get("delta_in_domain") for d in deltas]),
                     "delta_ood": _mean([d.get("delta_ood") for d in deltas]),
                     "forgetting": _mean([d.get("forgetting") for d in deltas])})
    return rows


def format_markdown(rows: list[dict]) -> str:
    """The paper-style table in percent: Base (a row per set of item counts), then one row per method."""
    def pct(v, signed=False):
        return "-" if v is None else (f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}")

    lines = ["| method | in-domain | OOD | prior | in-domain gain | forgetting | runs |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {pct(r.get('in_domain'))} | {pct(r.get('ood'))} | {pct(r.get('prior'))} | "
                     f"{pct(r.get('delta_in_domain'), True)} | {pct(r.get('forgetting'), True)} | {r['runs']} |")
    return "\n".join(lines)


CSV_COLUMNS = ("label", *PARAMS, "runs", *GROUPS, "delta_in_domain", "delta_ood", "forgetting")


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def curve_rows(runs: list[Run]) -> list[dict]:
    """Long-format curves (label, run, step, metric, value) from train_log.jsonl and eval_log.jsonl."""
    out = []
    for label, group in label_runs(runs).items():
        for run in group:
            for row in run.train_log + run.eval_log:
                out += [{"label": label, "run": str(run.path), "step": row["step"], "metric": k, "value": v}
                        for k, v in row.items() if k not in ("step", "epoch") and isinstance(v, int | float)]
    return out


def write_report(runs: list[Run], out_dir: Path) -> dict[str, Path]:
    """table.md, table.csv, curves.csv and the figures; returns {name: path}."""
    from spot.evaluate.figures import plot_curves, plot_tradeoff

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(runs)
    written = {"table.md": out_dir / "table.md", "table.csv": out_dir / "table.csv",
               "curves.csv": out_dir / "curves.csv", "runs.json": out_dir / "runs.json"}
    written["table.md"].write_text(format_markdown(rows) + "\n")
    write_csv(written["table.csv"], rows)
    curves = curve_rows(runs)
    with written["curves.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=("label", "run", "step", "metric", "value"))
        writer.writeheader()
        writer.writerows(curves)
    labels = {str(r.path): label for label, group in label_runs(runs).items() for r in group}
    written["runs.json"].write_text(json.dumps(
        [{"label": labels[str(r.path)], "path": str(r.path), **r.params} for r in runs], indent=2) + "\n")
    written |= plot_tradeoff(rows, out_dir)
    written |= plot_curves(curves, out_dir)
    return written


WANDB_COLUMNS = ("label", "method", "runs", "in_domain", "ood", "prior", "delta_in_domain", "delta_ood",
                 "forgetting")


def push_to_wandb(rows: list[dict], out_dir: Path, project: str = "spot", mode: str = "offline",
                  name: str = "forgetting-vs-gain") -> Path:
    """One W&B run holding the comparison: a Table with a row per method (the table.csv rows: accuracies,
    in-domain gain, forgetting) and a scatter chart of in-domain gain against forgetting. Returns its run
    directory (offline: `wandb sync <it>` uploads it)."""
    import wandb

    run = wandb.init(project=project, mode=mode, dir=str(out_dir), job_type="report", name=name,
                     config={"runs": sum(r.get("runs", 0) for r in rows if r["method"] != "base")})
    table = wandb.Table(columns=list(WANDB_COLUMNS), data=[[r.get(c) for c in WANDB_COLUMNS] for r in rows])
    run.log({"comparison": table,
             "forgetting_vs_gain": wandb.plot.scatter(table, "forgetting", "delta_in_domain",
                                                      title="In-domain gain vs forgetting (base prior - prior)")})
    run_dir = Path(run.dir).parent  # .../wandb/offline-run-<id>/files -> the run directory
    run.finish()
    return run_dir


class SweepReport(Callback):
    """A Hydra callback (conf/train.yaml hydra.callbacks): when a train.py sweep ends, its report is written
    into <sweep dir>/report/ and, with the W&B logger, the comparison is logged as one W&B run there."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            runs = find_runs([sweep])
        except ReportError as e:  # e.g. every job failed: nothing to compare
            log.warning("no sweep report: %s", e)
            return
        write_report(runs, sweep / "report")
        logger = config.get("logger") or {}
        if "WandbLogger" in str(logger.get("_target_", "")):
            push_to_wandb(table_rows(runs), sweep / "report", project=logger.get("project", "spot"),
                          mode="offline" if logger.get("offline", True) else "online")
        log.info("sweep report in %s", sweep / "report")
