"""Any OpenAI-compatible completions endpoint (generation=server): `vllm serve`, SGLang, a remote deployment.

Prompts go as token ids (so the server sees exactly the tokens the ChatFormat made); many requests are in
flight at once; 429s pause every request for their retry-after, 5xx, timeouts and dropped connections back
off and retry (spot.retry), and what no retry can fix (nothing listening, a refused key, an unknown model)
stops at once with one line, checked before the first prompt is sent. The key, when the server needs one, is
read from the environment variable `api_key_env` and written nowhere.
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx

from spot.engines.base import EngineError, TokenRate, request_seed
from spot.retry import RemoteFatal, RetryPolicy, Transient, Unavailable, parse_retry_after

for _name in ("httpx", "httpcore"):  # one INFO line per request would bury the progress bar
    logging.getLogger(_name).setLevel(logging.WARNING)


class ServerEngine:
    name = "server"
    loads_from_disk = True

    def __init__(self, model, tokenizer=None, base_url: str = "http://127.0.0.1:8000/v1",
                 served_model: str | None = None, api_key_env: str = "OPENAI_API_KEY", max_in_flight: int = 64,
                 timeout_s: float = 600.0, max_attempts: int = 6, backoff_s: float = 1.0):
        self.base_url, self.model = base_url.rstrip("/"), served_model or str(model)
        key = os.environ.get(api_key_env)
        self.headers = {"authorization": f"Bearer {key}"} if key else {}
        self.max_in_flight, self.timeout_s = max_in_flight, timeout_s
        self.retry = RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s)
        self._check_served(api_key_env)

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
        served = [m.get("id") for m in resp.json().get("data", [])]
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
        out = resp.json()
        return out["choices"][0]["text"], int((out.get("usage") or {}).get("completion_tokens", 0))

    async def _all(self, prompts: list[list[int]], sampling, seed: int, bar: TokenRate) -> list[str]:
        slots = asyncio.Semaphore(self.max_in_flight)
        greedy = sampling.greedy

        async def ask(client, i: int, prompt: list[int]) -> str:
            body = {"model": self.model, "prompt": prompt, "max_tokens": sampling.max_new_tokens, "n": 1,
                    "temperature": 0.0 if greedy else sampling.temperature,
                    "top_p": 1.0 if greedy else sampling.top_p, "seed": request_seed(seed, i)}
            if sampling.top_k and not greedy:
                body["top_k"] = sampling.top_k  # vLLM's and SGLang's extension of the OpenAI API
            try:
                text, tokens = await self.retry.run(lambda: self._one(client, body), slots)
            except Unavailable:
                raise EngineError(f"generation=server: no reply for prompt {i} after {self.retry.max_attempts} "
                                  "attempts") from None
            bar.update(1, tokens)
            return text

        limits = httpx.Limits(max_connections=self.max_in_flight)
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=self.timeout_s,
                                     limits=limits) as client:
            return list(await asyncio.gather(*(ask(client, i, p) for i, p in enumerate(prompts))))

    def complete(self, prompts: list[list[int]], sampling, seed: int = 0, progress: bool = True,
                 desc: str = "generate") -> list[str]:
        bar = TokenRate(len(prompts), desc, progress)
        try:
            return asyncio.run(self._all(prompts, sampling, seed, bar))
        finally:
            bar.close()

    def close(self) -> None:
        pass
