"""Helpers for tests that need a small real-path Hugging Face model: a byte-level BPE tokenizer with a Qwen3-style
chat template and a randomly initialised Qwen3ForCausalLM, saved like a hub checkpoint, plus GSM8K text to feed them."""

from __future__ import annotations

import json
from pathlib import Path

GSM8K = Path(__file__).resolve().parents[1] / "assets" / "gsm8k"   # the repository's slice of GSM8K

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]

# Qwen3's layout: one <|im_start|>role ... <|im_end|> block per message; enable_thinking=false pre-fills an empty think.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on `corpus` and wrap it with Qwen3's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.add_tokens(THINK_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_micro_hf_model(
    out_dir: Path, corpus: list[str], vocab_size: int = 512, hidden_size: int = 32, num_layers: int = 2,
    initializer_range: float = 0.2,
) -> Path:
    """Save a BPE tokenizer and a random-weight Qwen3ForCausalLM into `out_dir`, for AutoTokenizer/AutoModel.

    The weights are drawn 10x wider than transformers' default (0.02): at the default a model this small gives
    every prompt the same greedy completion (a run of newlines), which would make comparisons of completions
    vacuous."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out_dir = Path(out_dir)
    tok = build_tokenizer(corpus, vocab_size)
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden_size // 2,
        max_position_embeddings=2048,
        initializer_range=initializer_range,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),  # as Qwen3: no BOS is prepended, the id is endoftext
    )
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Path(path)


SOLVERS = ["6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"]


def gsm8k_pairs(n: int) -> list[dict]:
    """Preference pairs from OpenAI's example model solutions: the first n questions with a right and a wrong one."""
    pairs = []
    for row in _read_jsonl(GSM8K / "example_model_solutions.jsonl"):
        sols = [row[k] for k in SOLVERS if k in row]
        right = [s["solution"] for s in sols if s["is_correct"]]
        wrong = [s["solution"] for s in sols if not s["is_correct"]]
        if right and wrong:
            pairs.append({"prompt": row["question"], "chosen": right[0], "rejected": wrong[0]})
            if len(pairs) == n:
                break
    return pairs


def gsm8k_corpus(n: int = 400) -> list[str]:
    """Questions and answers of the first n GSM8K training rows, as text to train the tokenizer on."""
    rows = _read_jsonl(GSM8K / "train.jsonl")[:n]
    return [text for r in rows for text in (r["question"], r["answer"])]
