"""An Oracle behind any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp, OpenRouter, OpenAI),
over plain httpx: POST {base_url}/chat/completions.

The key, when the endpoint needs one, is read from the environment variable named by `api_key_env` and
sent as `Authorization: Bearer`; a local server without auth needs none.
"""

from __future__ import annotations

import json
import os

import httpx

from spot.errors import first_line
from spot.rectify.oracles.prompts import Prompt
from spot.rectify.oracles.remote import PER_REQUEST, Completion, RemoteOracle
from spot.retry import Rejected, RemoteFatal, Transient, parse_retry_after

_STOPS = {"stop": "end", "length": "max_tokens", "content_filter": "refusal"}


class OpenAICompatOracle(RemoteOracle):
    name = "openai"

    def __init__(self, model: str, base_url: str = "http://127.0.0.1:8000/v1", max_tokens: int = 4096,
                 temperature: float | None = 0.0, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout_s: float = 600.0, **common):
        super().__init__(**common)
        self.model, self.base_url = model, base_url.rstrip("/")
        self.max_tokens, self.temperature = max_tokens, temperature
        self.api_key_env, self.timeout_s = api_key_env, timeout_s
        self._clients: list[httpx.AsyncClient] = []
        self._turn = 0

    def _new_client(self) -> None:
        """Several small clients rather than one pool of `max_in_flight` connections: httpcore 1.0's pool
        re-scans all its connections for each connection on every request (quadratic), which cost ~15 ms of
        CPU a call at 64 connections; pools of 8 bring it down to the SDK path's few ms."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        headers = {"authorization": f"Bearer {key}"} if key else {}
        per_pool = 8
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._clients = [httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits)
                         for _ in range(-(-self.max_in_flight // per_pool))]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._loop = None

    async def _send(self, prompt: Prompt) -> Completion:
        body = {"model": self.model, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": prompt.system},
                             {"role": "user", "content": prompt.user}]}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        try:
            self._turn += 1
            client = self._clients[self._turn % len(self._clients)]
            r = await client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException:
            raise Transient("timeout") from None
        except httpx.TransportError:
            raise Transient("connection") from None
        if r.status_code == 429 or r.status_code in (408, 409) or r.status_code >= 500:
            raise Transient(str(r.status_code), parse_retry_after(r.headers))
        if r.status_code in PER_REQUEST:  # this request's content: the others go on
            raise Rejected(r.status_code, _error_message(r))
        if r.status_code != 200:  # the key, the model, the URL: every request would get it; nothing journaled
            raise RemoteFatal(f"{self.base_url}/chat/completions answered {r.status_code}: {_error_message(r)}; "
                              "nothing was journaled for it, so rerunning the same command after the fix asks it "
                              "again")
        try:
            data = r.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            usage = data.get("usage") or {}
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise Transient("malformed") from None
        return Completion(text=text, input_tokens=usage.get("prompt_tokens", 0) or 0,
                          output_tokens=usage.get("completion_tokens", 0) or 0,
                          stop=_STOPS.get(choice.get("finish_reason"), choice.get("finish_reason") or ""))


def _error_message(r: httpx.Response) -> str:
    """The endpoint's own words ({"error": {"message"}}, OpenAI's shape and Anthropic's), else the body's start."""
    try:
        error = r.json().get("error")
    except (json.JSONDecodeError, AttributeError):
        error = None
    message = error.get("message") if isinstance(error, dict) else None
    return first_line(message or r.text or f"HTTP {r.status_code}", 200)
