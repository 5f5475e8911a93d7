"""The analysis notebook: committed without outputs, and it runs top to bottom on a toy sweep's report."""

import nbformat
from nbclient import NotebookClient
from test_report import ROOT, run, toy_sweep  # noqa: F401  (the session's sweep fixture)

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
