"""A toy sweep over the seven methods (train.py -m experiment=ablation_loss, micro model, the evaluation
callback on), then report.py on it: table, CSV and figures with one command. Also the report's pieces on
hand-made runs, and derive_pairs for the gamma / n_pairs ablations.

The sweep is made once per test session (test_notebook.py reads the same report).
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spot.errors import UserError
from spot.evaluate.report import ReportError, Run, find_runs, format_markdown, label_runs, table_rows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from derive_pairs import derive  # noqa: E402

METHODS = ["sft", "rft", "sft_plus", "dpo", "reward_sft", "bce", "bco"]
CALLBACKS = ("trainer.callbacks=[{_target_:lightning.pytorch.callbacks.ModelCheckpoint,"
             "dirpath:${hydra:runtime.output_dir}/checkpoints,save_last:true},"
             "{_target_:spot.evaluate.callback.EvalCallback,every_n_steps:2,kl_prompts:2,kl_max_new_tokens:6,"
             "sampling:{temperature:0.0,batch_size:8},suites:{_target_:spot.toy.suites.toy_suite,"
             "part:prior,n:1,seed:1,max_new_tokens:4}}]")


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *cmd], cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def toy_sweep(tmp_path_factory, micro_model_dir) -> Path:
    """multirun-style directory with one finished run per method (2 optimizer steps each)."""
    from conftest import write_toy_files

    base = tmp_path_factory.getbasetemp() / "toy-sweep"
    if (base / "sweep" / "6_bco" / "metrics.json").exists():
        return base / "sweep"
    write_toy_files(base / "data" / "toy")  # the paths the method configs name, relative to the cwd
    run([str(ROOT / "train.py"), "-m", "experiment=ablation_loss", f"model.path={micro_model_dir}",
         "trainer.max_steps=2", "trainer.log_every_n_steps=1", "logger=csv", "hydra.sweep.dir=sweep",
         "eval.suites.toy_in_domain.n=2", "eval.suites.toy_ood.n=1", "eval.suites.toy_prior.n=1",
         "eval.sampling.batch_size=8", "eval.max_new_tokens=6", CALLBACKS], cwd=base)
    return base / "sweep"


def test_sweep_gives_table_and_figures_with_one_command(toy_sweep, tmp_path):
    proc = run([str(ROOT / "report.py"), str(toy_sweep)], cwd=tmp_path)
    out = toy_sweep / "report"
    md = (out / "table.md").read_text().splitlines()
    assert [line.split("|")[1].strip() for line in md[2:]] == ["Base", *METHODS]
    assert "| Base |" in proc.stdout and "7 runs" in proc.stdout
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["label"] for r in rows] == ["Base", *METHODS]
    bco = next(r for r in rows if r["label"] == "bco")
    metrics = json.loads((toy_sweep / "6_bco" / "metrics.json").read_text())
    assert float(bco["forgetting"]) == pytest.approx(metrics["delta"]["forgetting"])
    assert float(bco["in_domain"]) == pytest.approx(metrics["trained"]["groups"]["in_domain"])
    assert bco["loss"] == "bco" and bco["beta"] == "0.1"
    for png in ("tradeoff.png", "rewards.png", "kl.png", "forgetting_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    curves = list(csv.DictReader((out / "curves.csv").open()))
    metrics_logged = {(c["label"], c["metric"]) for c in curves}
    assert ("bco", "train/reward_shift") in metrics_logged and ("dpo", "train/rewards/margins") in metrics_logged
    assert ("sft", "eval/kl/token") in metrics_logged  # the callback's KL, against a frozen copy for SFT


def test_evaluation_callback_logs_curves_from_step_zero(toy_sweep):
    rows = [json.loads(x) for x in (toy_sweep / "6_bco" / "eval_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2]
    assert rows[0]["eval/kl/token"] == 0.0  # before any step the policy is its reference
    assert {"eval/prior", "eval/toy_prior_next/accuracy", "eval/kl/sequence"} <= set(rows[1])


def fake_run(tmp_path: Path, name: str, method: str, beta: float, seed: int, ind: float, prior: float,
             base_ind: float = 0.5, n: dict | None = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    base = {"in_domain": base_ind, "ood": 0.2, "prior": 0.8}
    trained = {"in_domain": ind, "ood": 0.2, "prior": prior}
    (d / "metrics.json").write_text(json.dumps({
        "run": {"method": method, "loss": method, "beta": beta, "seed": seed}, **({"n": n} if n else {}),
        "base": {"groups": base}, "trained": {"groups": trained},
        "delta": {"delta_in_domain": ind - base_ind, "forgetting": 0.8 - prior}}))
    (d / "train_log.jsonl").write_text(json.dumps({"step": 1, "train/kl": 0.1}) + "\n")
    return d


def test_rows_average_seeds_and_name_what_differs(tmp_path):
    fake_run(tmp_path, "a", "bco", 0.1, 0, 0.7, 0.8)
    fake_run(tmp_path, "b", "bco", 0.1, 1, 0.9, 0.6)
    fake_run(tmp_path, "c", "bco", 0.5, 0, 0.6, 0.8)
    fake_run(tmp_path, "d", "sft", None, 0, 0.4, 0.5)
    runs = find_runs([tmp_path])
    assert list(label_runs(runs)) == ["sft", "bco (beta=0.1)", "bco (beta=0.5)"]
    rows = {r["label"]: r for r in table_rows(runs)}
    assert rows["bco (beta=0.1)"]["runs"] == 2
    assert rows["bco (beta=0.1)"]["in_domain"] == pytest.approx(0.8)
    assert rows["bco (beta=0.1)"]["forgetting"] == pytest.approx(0.1)
    assert rows["Base"]["prior"] == pytest.approx(0.8) and rows["sft"]["forgetting"] == pytest.approx(0.3)


def test_bases_scored_on_other_item_counts_are_never_averaged(tmp_path):
    """68.4% on 1,000 items and 70.0% on 20 (eval.limit=20) once showed as one 69.2% Base: now two rows, each
    labelled with its count, and the trained runs split the same way."""
    fake_run(tmp_path, "full", "bco", 0.1, 0, 0.72, 0.8, base_ind=0.684, n={"gsm8k": 1000, "prior": 50})
    fake_run(tmp_path, "quick", "bco", 0.1, 1, 0.75, 0.8, base_ind=0.70, n={"gsm8k": 20, "prior": 50})
    rows = {r["label"]: r for r in table_rows(find_runs([tmp_path]))}
    assert set(rows) == {"Base (gsm8k 1,000 items)", "Base (gsm8k 20 items)", "bco (gsm8k 1,000 items)",
                         "bco (gsm8k 20 items)"}
    assert rows["Base (gsm8k 1,000 items)"]["in_domain"] == pytest.approx(0.684)
    assert rows["Base (gsm8k 20 items)"]["in_domain"] == pytest.approx(0.70)
    assert list(rows)[0] == "Base (gsm8k 1,000 items)"  # the fuller measurement first
    table = format_markdown(list(rows.values()))
    assert "| 68.4 |" in table and "| 70.0 |" in table and "69.2" not in table


def test_runs_on_the_same_item_counts_keep_one_base_row(tmp_path):
    fake_run(tmp_path, "a", "bco", 0.1, 0, 0.7, 0.8, base_ind=0.684, n={"gsm8k": 1000})
    fake_run(tmp_path, "b", "bco", 0.1, 1, 0.9, 0.6, base_ind=0.684, n={"gsm8k": 1000})
    assert [r["label"] for r in table_rows(find_runs([tmp_path]))] == ["Base", "bco"]


def test_a_report_error_is_a_user_error():
    assert issubclass(ReportError, UserError)  # report.py ends on it with one line and exit status 2


def test_report_errors_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run([str(ROOT / "report.py"), str(tmp_path / "empty")], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no metrics.json in it or below it" in proc.stderr
    assert "Traceback" not in proc.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{")
    with pytest.raises(ReportError, match=r"broken/metrics.json: not valid JSON"):
        find_runs([broken])
    assert isinstance(Run(broken, {"run": {}}).method, str)


def test_derive_pairs_filters_by_gamma_then_subsamples():
    rows = [{"id": i, "r_lcs": i / 10} for i in range(10)]
    kept = derive(rows, gamma=0.6)
    assert [r["id"] for r in kept] == [0, 1, 2, 3, 4, 5, 6]  # R_LCS <= gamma, as rectify keeps them
    sub = derive(rows, gamma=0.6, n=3, seed=0)
    assert len(sub) == 3 and sub == derive(rows, gamma=0.6, n=3, seed=0) and set(map(id, sub)) <= set(map(id, kept))
    with pytest.raises(ValueError, match="asked for 8 pairs but only 7"):
        derive(rows, gamma=0.6, n=8)
    with pytest.raises(ValueError, match="row 1 has no r_lcs"):
        derive([{"id": 0}], gamma=0.5)


def test_report_logs_the_forgetting_comparison_to_wandb_offline(toy_sweep, tmp_path):
    """The W&B run's Table, read back from the offline run's files: one row per method, the report's numbers."""
    out = tmp_path / "report"
    proc = run([str(ROOT / "report.py"), str(toy_sweep), "--out", str(out), "--wandb", "offline"], cwd=tmp_path)
    assert "W&B comparison run:" in proc.stdout and "wandb sync" in proc.stdout
    (table_file,) = out.glob("wandb/offline-run-*/files/media/table/comparison_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"][:3] == ["label", "method", "runs"] and "forgetting" in table["columns"]
    rows = {r[0]: dict(zip(table["columns"], r)) for r in table["data"]}
    assert list(rows) == ["Base", *METHODS]
    want = {r["label"]: r for r in csv.DictReader((out / "table.csv").open())}
    for label in METHODS:
        assert rows[label]["forgetting"] == pytest.approx(float(want[label]["forgetting"]))
        assert rows[label]["delta_in_domain"] == pytest.approx(float(want[label]["delta_in_domain"]))


def test_figures_leave_out_panels_no_run_logged(tmp_path):
    """kl.png of runs without the evaluation callback: one panel (train/kl), not a second, empty frame."""
    import struct

    from spot.evaluate.figures import plot_curves

    width = lambda p: struct.unpack(">I", p.read_bytes()[16:20])[0]  # PNG IHDR: width, then height
    curves = [{"label": "bco", "run": "r", "step": s, "metric": "train/kl", "value": 0.01 * s} for s in range(5)]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = plot_curves(curves, tmp_path / "one")["kl.png"]
    both = curves + [{"label": "bco", "run": "r", "step": 1, "metric": "eval/kl/token", "value": 0.1}]
    two = plot_curves(both, tmp_path / "two")["kl.png"]
    assert width(two) > 1.8 * width(one)  # two panels side by side, against the one panel with data


def test_bco_runs_differing_only_in_the_shifts_mode_get_their_own_labelled_rows(tmp_path):
    """A sweep of reward_shift.mode (experiment=ablation_reward_shift): two rows, each saying its mode."""
    for name, mode, ind in (("0_bco_mode-cumulative", "cumulative", 0.7), ("1_bco_mode-ema", "ema", 0.9)):
        run = fake_run(tmp_path, name, "bco", 0.1, 0, ind, 0.8)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["run"]["reward_shift"] = mode
        (run / "metrics.json").write_text(json.dumps(metrics))
    rows = {r["label"]: r for r in table_rows(find_runs([tmp_path]))}
    assert rows["bco (reward_shift=cumulative)"]["in_domain"] == pytest.approx(0.7)
    assert rows["bco (reward_shift=ema)"]["in_domain"] == pytest.approx(0.9)
