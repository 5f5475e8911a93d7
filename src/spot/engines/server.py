"""Any OpenAI-compatible completions endpoint (generation=server): `vllm serve`, SGLang, a remote deployment.

Prompts go as token ids (so the server sees exactly the tokens the ChatFormat made); many requests are in
flight at once. 429s pause every request for their retry-after; 5xx, timeouts, dropped connections and 200s
whose body cannot be used (not JSON, no `choices`, a choice without text) back off and retry (spot.retry).
What no retry can fix (nothing listening, a refused key, an unknown model) stops at once with one line, checked
before the first prompt is sent; a prompt still without a usable reply after every attempt stops the call with
one line, after every completion that did arrive was handed to `on_done` (evaluate.py journals them, so a rerun
asks only for the rest). Progress (prompts done, tokens/s, retries) shows at least every SPOT_PROGRESS_EVERY_S
seconds, also while the server answers nothing. The key, when the server needs one, is read from the
environment variable `api_key_env` and written nowhere.
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx

from spot.engines.base import Arrived, EngineError, TokenRate, request_seeds
from spot.errors import check, check_type
from spot.retry import RemoteFatal, RetryPolicy, Transient, Unavailable, parse_retry_after

for _name in ("httpx", "httpcore"):  # one INFO line per request would bury the progress bar
    logging.getLogger(_name).setLevel(logging.WARNING)

# (option, type, test, rule): conf/generation/server.yaml's counts and durations
OPTION_RANGES = (("max_in_flight", int, lambda v: v >= 1, ">= 1"),
                 ("max_attempts", int, lambda v: v >= 1, ">= 1"),
                 ("timeout_s", (int, float), lambda v: v > 0, "> 0"),
                 ("backoff_s", (int, float), lambda v: v >= 0, ">= 0"))


def completion_of(resp: httpx.Response) -> tuple[str, int]:
    """(text, completion tokens) of a 200 reply. A body that cannot be used is retried like a 5xx: a proxy or an
    overloaded server cuts bodies short, and one bad reply must not end hours of generation."""
    try:
        out = resp.json()
    except ValueError:  # not JSON, or not UTF-8
        raise Transient("malformed_json") from None
    choices = out.get("choices") if isinstance(out, dict) else None
    if not isinstance(choices, list) or not choices:  # n=1 is asked: fewer choices is none
        raise Transient("no_choices")
    text = choices[0].get("text") if isinstance(choices[0], dict) else None
    if not isinstance(text, str):
        raise Transient("no_text")
    usage = out.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return text, tokens if isinstance(tokens, int) else 0


class ServerEngine:
    name = "server"
    loads_from_disk = True
    transport_options = ("base_url", "api_key_env", "max_in_flight", "timeout_s", "max_attempts", "backoff_s")

    @classmethod
    def from_weights(cls, weights, tokenizer, **options) -> ServerEngine:
        return cls(weights.directory(), tokenizer, **options)  # its name on the server, unless served_model

    def __init__(self, model, tokenizer=None, base_url: str = "http://127.0.0.1:8000/v1",
                 served_model: str | None = None, api_key_env: str = "OPENAI_API_KEY", max_in_flight: int = 64,
                 timeout_s: float = 600.0, max_attempts: int = 6, backoff_s: float = 1.0):
        self.base_url, self.model = base_url.rstrip("/"), served_model or str(model)
        key = os.environ.get(api_key_env)
        self.headers = {"authorization": f"Bearer {key}"} if key else {}
        self.max_in_flight, self.timeout_s = max_in_flight, timeout_s
        self.retry = RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s)
        self._check_served(api_key_env)

    @staticmethod
    def check_options(options: dict) -> None:
        for name, types, ok, rule in OPTION_RANGES:
            if name in options:
                key, value = f"generation.options.{name}", options[name]
                check_type(value, types, key)
                check(ok(value), key, f"must be {rule}, got {value!r}")

    def _check_served(self, api_key_env: str) -> None:
        where = f"generation=server ({self.base_url})"
        try:
            resp = httpx.get(f"{self.base_url}/models", headers=self.headers, timeout=10)
        except httpx.HTTPError as e:
            raise EngineError(f"{where}: nothing answers ({type(e).__name__}); start one, e.g. vllm serve <model> "
                              "--host 127.0.0.1 --port 8000, or set generation.options.base_url") from None
        if resp.status_code in (401, 403):
            raise EngineError(f"{where}: the server refused the API key (HTTP {resp.status_code}; key from "
                              f"${api_key_env})")
        if resp.status_code != 200:
            raise EngineError(f"{where}: GET /models answered HTTP {resp.status_code}")
        try:
            served = [m.get("id") for m in resp.json().get("data", [])]
        except (ValueError, AttributeError, TypeError):
            raise EngineError(f"{where}: GET /models answered something that is not a model list") from None
        if self.model not in served:
            raise EngineError(f"{where} serves {served}, not {self.model!r}: set generation.options.served_model")

    async def _one(self, client: httpx.AsyncClient, body: dict) -> tuple[str, int]:
        try:
            resp = await client.post("/completions", json=body)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise Transient(type(e).__name__) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise Transient(f"http_{resp.status_code}", parse_retry_after(resp.headers))
        if resp.status_code != 200:
            raise RemoteFatal(f"generation=server: HTTP {resp.status_code}: {resp.text[:300]}")
        return completion_of(resp)

    def _body(self, prompt: list[int], sampling, seed: int) -> dict:
        greedy = sampling.greedy
        body = {"model": self.model, "prompt": prompt, "max_tokens": sampling.max_new_tokens, "n": 1,
                "temperature": 0.0 if greedy else sampling.temperature, "top_p": 1.0 if greedy else sampling.top_p,
                "seed": seed}
        if sampling.top_k and not greedy:
            body["top_k"] = sampling.top_k  # vLLM's and SGLang's extension of the OpenAI API
        return body

    def _retries(self) -> int:
        return sum(v for k, v in self.retry.stats.items() if k.startswith("retry_"))

    async def _all(self, prompts: list[list[int]], sampling, seeds: list[int], bar: TokenRate,
                   on_done: Arrived | None) -> list[str]:
        slots = asyncio.Semaphore(self.max_in_flight)
        out: list[str | None] = [None] * len(prompts)

        async def ask(client, k: int) -> None:
            body = self._body(prompts[k], sampling, seeds[k])
            try:
                text, tokens = await self.retry.run(lambda: self._one(client, body), slots)
            except Unavailable as e:
                done = sum(o is not None for o in out)
                raise EngineError(f"generation=server ({self.base_url}): {e}; {done} of {len(prompts)} prompts "
                                  "were answered") from None
            out[k] = text
            bar.update(1, tokens)
            if on_done is not None:
                on_done([k], [text])

        limits = httpx.Limits(max_connections=self.max_in_flight)
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=self.timeout_s,
                                     limits=limits) as client:
            tasks = [asyncio.create_task(ask(client, k)) for k in range(len(prompts))]
            beat = asyncio.create_task(bar.heartbeat(retries=self._retries))
            try:
                await asyncio.gather(*tasks)
            finally:  # on the first failure the others stop here, not half-way through the client's shutdown
                for task in (*tasks, beat):
                    task.cancel()
                await asyncio.gather(*tasks, beat, return_exceptions=True)
        return out

    def complete(self, prompts: list[list[int]], sampling, seed: int = 0, progress: bool = True,
                 desc: str = "generate", positions: list[int] | None = None,
                 on_done: Arrived | None = None) -> list[str]:
        bar = TokenRate(len(prompts), desc, progress)
        try:
            return asyncio.run(self._all(prompts, sampling, request_seeds(seed, len(prompts), positions), bar,
                                         on_done))
        finally:
            bar.close()

    def close(self) -> None:
        pass
