"""Benchmarks by hub id, never over the network: a fake dataset directory loaded through `datasets` as a suite's
hub id, the local file first, the prepare command, the gated and offline one-liners (tests run HF_HUB_OFFLINE=1)."""

import json
import subprocess
import sys

import pytest
from test_evaluate_cli import QUIET, ROOT, evaluate

from spot.errors import DataError
from spot.evaluate.prepare import compose, prepare
from spot.evaluate.suite_files import choice_suite, file_suite

MATH_ROWS = [{"problem": "What is 1+1?", "solution": "It is \\boxed{2}.", "answer": "2"},
             {"problem": "What is 2+3?", "solution": "It is \\boxed{5}.", "answer": "5"}]
GPQA_ROW = {"Question": "Which gas?", "Correct Answer": "Argon", "Incorrect Answer 1": "Neon",
            "Incorrect Answer 2": "Xenon", "Incorrect Answer 3": "Radon"}


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """`datasets` caches what it loads under the test's own directory, not the user's ~/.cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))


def fake_hub_dataset(directory, files: dict[str, list[dict]], configs: dict[str, dict[str, str]] | None = None):
    """A directory laid out as a hub dataset repository: data files, and the README's `configs` when it has
    subsets (as Idavidrein/gpqa has gpqa_diamond)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if configs:
        yaml = "".join(f"- config_name: {c}\n  data_files:\n"
                       + "".join(f"  - split: {split}\n    path: {path}\n" for split, path in splits.items())
                       for c, splits in configs.items())
        (directory / "README.md").write_text(f"---\nconfigs:\n{yaml}---\n")
    return directory


def test_a_suite_loads_by_hub_id_through_datasets_when_its_file_is_missing(tmp_path, datasets_cache):
    from spot.answers import MathVerifier

    hub = fake_hub_dataset(tmp_path / "HuggingFaceH4-MATH-500", {"test.jsonl": MATH_ROWS})
    suite = file_suite("math500", path=str(tmp_path / "missing" / "math500.jsonl"), hub=str(hub), split="test",
                       score=MathVerifier(), n_samples=5)
    assert suite.prompts == ["What is 1+1?", "What is 2+3?"] and suite.answers == ["2", "5"]
    assert suite.meta[1]["source"] == f"{hub}[test]:row 2"
    assert list((tmp_path / "hf-datasets-cache").iterdir()), "datasets did not cache what it loaded"

    gpqa = fake_hub_dataset(tmp_path / "gpqa", {"gpqa_diamond/train.jsonl": [GPQA_ROW]},
                            configs={"gpqa_diamond": {"train": "gpqa_diamond/train.jsonl"}})
    mc = choice_suite("gpqa_diamond", path=str(tmp_path / "missing" / "gpqa.jsonl"), hub=str(gpqa),
                      subset="gpqa_diamond", split="train")
    assert "Argon" in mc.prompts[0] and mc.meta[0]["source"] == f"{gpqa}[gpqa_diamond][train]:row 1"


def test_the_local_file_comes_first(tmp_path, datasets_cache):
    from spot.answers import MathVerifier

    local = tmp_path / "math500.jsonl"
    local.write_text(json.dumps({"problem": "local?", "answer": "7"}) + "\n")
    suite = file_suite("math500", path=str(local), hub=str(tmp_path / "no-such-dataset"), score=MathVerifier())
    assert suite.prompts == ["local?"] and suite.meta[0]["source"] == f"{local}:1"


def test_a_wrong_split_names_the_hub_key(tmp_path, datasets_cache):
    from spot.answers import MathVerifier

    hub = fake_hub_dataset(tmp_path / "ds", {"test.jsonl": MATH_ROWS})
    with pytest.raises(DataError, match=rf"eval.suites.math500.hub={hub}: cannot load dataset \(split train\): "
                                        r"Unknown split"):
        file_suite("math500", path=str(tmp_path / "no.jsonl"), hub=str(hub), split="train", score=MathVerifier())


def test_gated_dataset_says_how_to_accept_its_terms(tmp_path, monkeypatch):
    import datasets

    def gated(*args, **kwargs):  # what datasets raises for a gated repository without access
        raise datasets.exceptions.DatasetNotFoundError(
            "Dataset 'Idavidrein/gpqa' is a gated dataset on the Hub. You must be authenticated to access it.")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    with pytest.raises(DataError) as e:
        choice_suite("gpqa_diamond", path=str(tmp_path / "gpqa_diamond.jsonl"), hub="Idavidrein/gpqa",
                     subset="gpqa_diamond")
    assert str(e.value) == ("eval.suites.gpqa_diamond.hub=Idavidrein/gpqa is gated: accept its terms at "
                            "https://huggingface.co/datasets/Idavidrein/gpqa (logged in), then log in here with "
                            "`hf auth login` (or set HF_TOKEN)")


def test_offline_without_files_is_one_line_naming_the_files_and_the_prepare_command(tmp_path):
    proc = evaluate(tmp_path, "eval=[math500]", f"benchmarks_dir={tmp_path}/nowhere", *QUIET, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr == (f"error: eval.suites.math500.path={tmp_path}/nowhere/math500.jsonl does not exist and "
                           "eval.suites.math500.hub=HuggingFaceH4/MATH-500 cannot be loaded here (Couldn't reach "
                           "'HuggingFaceH4/MATH-500' on the Hub (OfflineModeIsEnabled)); write the file where the "
                           "hub is reachable with `python -m spot.evaluate.prepare \"eval=[math500]\"` and copy it "
                           f"to {tmp_path}/nowhere/math500.jsonl\n")
    paper = evaluate(tmp_path, "eval=paper", f"benchmarks_dir={tmp_path}/nowhere", *QUIET, check=False)
    assert paper.returncode == 2 and paper.stderr.count("\n") == 1 and "Traceback" not in paper.stderr
    assert paper.stderr.startswith(f"error: 8 benchmark files are missing: eval.suites.aime24.path={tmp_path}/"
                                   "nowhere/aime24.jsonl, ") and "connect4" not in paper.stderr
    assert ('`python -m spot.evaluate.prepare "eval=[aime24,aime25,amc23,math500,minerva,olympiadbench,'
            'gpqa_diamond,ifeval]"`') in paper.stderr
    assert not (tmp_path / "outputs").exists()  # nothing was run, so no run directory is left behind


def test_prepare_writes_the_files_evaluate_reads_first(tmp_path, datasets_cache):
    hub = fake_hub_dataset(tmp_path / "fake-math", {"test.jsonl": MATH_ROWS})
    bench = tmp_path / "benchmarks"
    overrides = ["eval=[math500,connect4]", f"eval.suites.math500.hub={hub}", f"benchmarks_dir={bench}"]
    said = []
    assert prepare(overrides, say=said.append) == [bench / "math500.jsonl"]
    assert [json.loads(line) for line in (bench / "math500.jsonl").read_text().splitlines()] == MATH_ROWS
    assert said[1] == "connect4: no hub dataset in its config (generated or local only); nothing to write"
    prepare(overrides, say=said.append)  # again: the file is kept unless --force
    assert said[2] == f"math500: {bench / 'math500.jsonl'} is already there (--force replaces it)"
    from spot.cli import build_suites

    cfg = compose(["eval=[math500]", f"benchmarks_dir={bench}", "eval.suites.math500.hub=null"])
    (suite,) = build_suites(cfg.eval)
    assert suite.answers == ["2", "5"] and suite.n_samples == 5


def test_prepare_command_offline_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spot.evaluate.prepare", "eval=[ifeval]",
                           f"benchmarks_dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: eval.suites.ifeval.path={tmp_path}/ifeval.jsonl does not exist and "
                                  "eval.suites.ifeval.hub=google/IFEval cannot be loaded here")


PAPER_HUBS = {  # suite: (hub id, subset, split) as conf/eval/ names them
    "math500": ("HuggingFaceH4/MATH-500", None, "test"), "aime24": ("HuggingFaceH4/aime_2024", None, "train"),
    "aime25": ("math-ai/aime25", None, "test"), "amc23": ("math-ai/amc23", None, "test"),
    "minerva": ("math-ai/minervamath", None, "test"),
    "olympiadbench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),
    "gpqa_diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train"), "ifeval": ("google/IFEval", None, "train"),
}


def test_every_file_backed_paper_suite_names_its_hub_dataset_and_its_default_file():
    suites = compose(["eval=paper"]).eval.suites
    for name, (hub, subset, split) in PAPER_HUBS.items():
        node = suites[name]
        assert (node.hub, node.subset, node.split) == (hub, subset, split), name
        assert node.path == f"data/benchmarks/{name}.jsonl", name


def test_every_suite_is_in_the_docs_table():
    table = (ROOT / "docs" / "SUITES.md").read_text()
    for file in sorted((ROOT / "conf" / "eval").glob("*.yaml")):
        first = file.read_text().splitlines()[0]
        if first.startswith("# @package eval.suites."):
            name = first.removeprefix("# @package eval.suites.")
            assert f"`{name}`" in table, f"{file.name}: suite {name} is missing from docs/SUITES.md"
