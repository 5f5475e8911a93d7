"""The analysis notebook: committed without outputs, and it runs top to bottom on a toy sweep's report."""

import nbformat
from nbclient import NotebookClient
from test_report import ROOT, fake_run, run, toy_sweep  # noqa: F401  (the session's sweep fixture)

from spot.evaluate.report import find_runs, write_report

NOTEBOOK = ROOT / "notebooks" / "tradeoff.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_on_the_sweep_report(toy_sweep, tmp_path, monkeypatch):  # noqa: F811
    report = toy_sweep / "report"
    if not (report / "table.csv").exists():
        run([str(ROOT / "report.py"), str(toy_sweep)], cwd=tmp_path)
    monkeypatch.setenv("SPOT_REPORT", str(report))  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "7 runs, 7 rows besides Base" in text
    assert "best in-domain gain:" in text and "least forgetting:" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the trade-off scatter and the curves


def test_a_relative_spot_report_is_read_from_where_the_launch_command_ran(tmp_path, monkeypatch):
    """`SPOT_REPORT=multirun/.../report jupyter lab notebooks/tradeoff.ipynb` from the repository root: the
    kernel starts in notebooks/, and the path is the user's, typed from where they stand (PWD)."""
    sweep = tmp_path / "multirun" / "sweep"
    sweep.mkdir(parents=True)
    fake_run(sweep, "a", "bco", 0.1, 0, 0.7, 0.8)
    fake_run(sweep, "b", "sft", None, 0, 0.6, 0.7)
    write_report(find_runs([sweep]), sweep / "report")
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("SPOT_REPORT", "multirun/sweep/report")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = nb.cells[:2]  # the cell that finds and reads the report
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    assert "2 runs, 2 rows besides Base" in nb.cells[1].outputs[0]["text"]
