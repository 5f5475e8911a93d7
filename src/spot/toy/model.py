"""A character tokenizer and a tiny Qwen3-architecture model, both real transformers objects.

They are saved with `save_pretrained` and loaded back with AutoTokenizer / AutoModelForCausalLM, so the toy
world runs through exactly the loading, chat-template and generation code that serves real models.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

SPECIALS = ["<pad>", "<eos>", "<unk>"]
CHARS = ["\n"] + [chr(c) for c in range(32, 127)]

# The toy chat template: a user turn renders as "Q: ...\nA: " and an assistant turn is its text then <eos>.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}Q: {{ m['content'] }}\nA: "
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}<eos>"
    "{% endif %}"
    "{%- endfor -%}"
)

assert len(set(CHARS)) == len(CHARS) and "#" in CHARS and all(c in CHARS for c in string.ascii_letters)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character; anything outside printable ASCII becomes <unk>."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
    max_positions: int = 320,
    seed: int = 0,
) -> Qwen3ForCausalLM:
    """A Qwen3-architecture model (the paper's family) from a config: about 0.8M parameters by default.

    Qwen3 rather than Qwen2 also matters for loading: transformers 5 maps a `qwen2` config to Qwen2Tokenizer,
    which would replace our character tokenizer's pre-tokenizer with a byte-level one on reload.
    """
    import torch

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
