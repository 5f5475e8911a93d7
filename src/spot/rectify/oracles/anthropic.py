"""The Anthropic Oracle: Claude through the official SDK's AsyncAnthropic client.

The key is read from the environment variable named by `api_key_env` (ANTHROPIC_API_KEY) when the client is
made; it is never a config value, so Hydra's config dump, the journals and the report cannot contain it.
The SPoT instructions go in the system prompt marked with cache_control, so with prompt caching on, calls
after the first read them from the cache (Anthropic caches prefixes above a model-dependent minimum length,
1024 tokens for Sonnet; a shorter prompt is simply not cached, at no cost).
"""

from __future__ import annotations

import json
import os

import anthropic

try:  # the SDK's own HTTP library: httpx2 from anthropic 2 on, httpx before
    import httpx2 as _http
except ImportError:  # pragma: no cover
    import httpx as _http

from spot.errors import first_line
from spot.rectify.oracles.prompts import Prompt
from spot.rectify.oracles.remote import PER_REQUEST, Completion, RemoteOracle
from spot.retry import Rejected, RemoteFatal, Transient, parse_retry_after

# what to fix when the account or the endpoint refuses every request
_FATAL = {401: "the API key was refused: check the variable oracle.backend.api_key_env names, ANTHROPIC_API_KEY",
          402: "billing: check the account's plan and payment method",
          403: "permission denied: the key may not use this model or endpoint",
          404: "unknown model or URL: check oracle.backend.model and oracle.backend.base_url"}
_NO_CREDIT = "the credit balance is too low: top it up in the Anthropic console"
_STOPS = {"end_turn": "end", "stop_sequence": "end", "max_tokens": "max_tokens", "refusal": "refusal"}


class AnthropicOracle(RemoteOracle):
    name = "anthropic"

    def __init__(self, model: str, max_tokens: int = 4096, base_url: str | None = None,
                 api_key_env: str = "ANTHROPIC_API_KEY", timeout_s: float = 600.0, cache_prompt: bool = True,
                 **common):
        super().__init__(**common)
        if not os.environ.get(api_key_env):
            raise RemoteFatal(f"oracle=anthropic needs an API key in the environment variable {api_key_env}")
        self.model, self.max_tokens = model, max_tokens
        self.base_url, self.api_key_env, self.timeout_s = base_url, api_key_env, timeout_s
        self.cache_prompt = cache_prompt
        self._clients: list[anthropic.AsyncAnthropic] = []
        self._client: anthropic.AsyncAnthropic | None = None
        self._turn = 0

    def _new_client(self) -> None:
        """Up to eight clients, calls dealt round robin: the HTTP pool checks every one of its connections on
        each request, and eight pools of eight cost ~20% less CPU a call than one pool of 64 (measured with
        benchmarks/bench_oracle.py), which is the difference once the client is CPU-bound."""
        shards = min(8, max(1, self.max_in_flight // 8))
        per_pool = -(-self.max_in_flight // shards)
        limits = _http.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._clients = [anthropic.AsyncAnthropic(
            api_key=os.environ[self.api_key_env], base_url=self.base_url, timeout=self.timeout_s, max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout_s))
            for _ in range(shards)]
        self._client = self._clients[0]  # for calls where one client is plenty (batches)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()
        self._loop = None

    def _request(self, prompt: Prompt) -> dict:
        system = {"type": "text", "text": prompt.system}
        if self.cache_prompt:
            system["cache_control"] = {"type": "ephemeral"}
        # no sampling parameters: recent Claude models reject them, and SDK 2.x no longer takes them
        return {"model": self.model, "max_tokens": self.max_tokens, "system": [system],
                "messages": [{"role": "user", "content": prompt.user}]}

    async def _send(self, prompt: Prompt) -> Completion:
        try:
            self._turn += 1
            client = self._clients[self._turn % len(self._clients)]
            msg = await client.messages.create(**self._request(prompt))
        except anthropic.APIStatusError as e:
            return _status_error(e)
        except anthropic.APITimeoutError:
            raise Transient("timeout") from None
        except anthropic.APIConnectionError:
            raise Transient("connection") from None
        except (anthropic.APIResponseValidationError, json.JSONDecodeError, ValueError):
            raise Transient("malformed") from None
        u = msg.usage
        if u is None or not isinstance(msg.content, list):
            raise Transient("malformed")
        text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
        return Completion(text=text, input_tokens=u.input_tokens or 0, output_tokens=u.output_tokens or 0,
                          cache_read_tokens=getattr(u, "cache_read_input_tokens", 0) or 0,
                          cache_write_tokens=getattr(u, "cache_creation_input_tokens", 0) or 0,
                          stop=_STOPS.get(msg.stop_reason or "", msg.stop_reason or ""))


def _status_error(e: anthropic.APIStatusError) -> Completion:
    """429, 408, 409 and 5xx are retried; a refusal of this request alone (`PER_REQUEST`: 413 too large, a 400
    invalid request) is `Rejected`; every other status stops the run, and nothing is journaled for it.

    A 400 is not always this one request's fault: Anthropic answers 400 invalid_request_error when the credit
    balance is too low, for every request. Journaled, it would never be asked again after the balance is topped
    up; stopped, the rerun asks it again."""
    status, message = e.status_code, _api_message(e)
    if status == 429:
        raise Transient("429", parse_retry_after(e.response.headers)) from None
    if status in (408, 409) or status >= 500:
        raise Transient(str(status), parse_retry_after(e.response.headers)) from None
    no_credit = status == 400 and "credit balance" in message.lower()
    if status in PER_REQUEST and not no_credit:
        raise Rejected(status, message) from None
    fix = _NO_CREDIT if no_credit else _FATAL.get(status, "the request was refused")
    raise RemoteFatal(f"Anthropic API answered {status} ({fix}): {message}; nothing was journaled for it, so "
                      "rerunning the same command after the fix asks it again") from None


def _api_message(e: anthropic.APIStatusError) -> str:
    """The API's own words ({"error": {"message"}}), else the SDK's summary, on one line."""
    error = e.body.get("error") if isinstance(e.body, dict) else None
    return first_line(error.get("message") if isinstance(error, dict) and error.get("message") else e.message)
