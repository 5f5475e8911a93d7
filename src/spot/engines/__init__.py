"""Generation engines: what turns prompts into completions, chosen with the Hydra group `generation=`.

    generation=hf       transformers' generate in this process (the default; no extra dependency)
    generation=vllm     vLLM in this process: continuous batching, paged KV cache, prefix caching; tensor- or
                        data-parallel across GPUs (pip install -e ".[vllm]"; CPU recipe in the README)
    generation=server   any OpenAI-compatible completions endpoint (vllm serve, SGLang, a deployment)

Every engine takes prompt token ids, formatted once by spot.chat.ChatFormat, and returns one completion per
prompt in order, special tokens stripped, so every engine sees exactly the tokens the model was trained on.
"""

from spot.engines.base import HF, Engine, EngineError, EngineSpec, Weights

__all__ = ["HF", "Engine", "EngineError", "EngineSpec", "Weights"]
