"""The Oracle base (spot.rectify.oracles.base.Oracle): every backend is one, so the pipeline asks each for its
settings, stats and close directly; and each backend, not rectify.py, says which of its settings leave its
replies unchanged."""

import asyncio
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from spot.arith.oracle import ArithOracle
from spot.rectify.oracles.anthropic import AnthropicOracle
from spot.rectify.oracles.anthropic_batch import AnthropicBatchOracle
from spot.rectify.oracles.base import Oracle
from spot.rectify.oracles.openai_compatible import OpenAICompatOracle
from spot.toy.oracle import ToyOracle

ROOT = Path(__file__).resolve().parents[1]


def rectify_script():
    """The module holding rectify.py's job (rectify.py only composes the config and calls it)."""
    import spot.rectify_run

    return spot.rectify_run


def composed(oracle: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="rectify", overrides=[f"oracle={oracle}", *overrides])


@pytest.mark.parametrize("cls", [ToyOracle, ArithOracle, AnthropicOracle, AnthropicBatchOracle, OpenAICompatOracle])
def test_every_backend_is_an_oracle(cls):
    assert issubclass(cls, Oracle)


def test_a_programmatic_oracle_has_no_prompt_no_retries_and_nothing_to_close():
    oracle = ToyOracle()
    assert oracle.prompt_digest is None and oracle.stats == {}
    asyncio.run(oracle.aclose())
    assert oracle.settings({"_target_": "spot.toy.oracle.ToyOracle"}) == {
        "backend": {"_target_": "spot.toy.oracle.ToyOracle"}, "prompts": None}


def test_an_oracle_without_its_two_jobs_cannot_be_made():
    class Half(Oracle):
        async def rectify(self, problem, answer, reference=None):
            return None

    with pytest.raises(TypeError, match="solve"):
        Half()


@pytest.mark.parametrize("oracle, speed_only, kept", [
    ("anthropic", {"max_in_flight", "timeout_s", "max_attempts", "backoff_s", "max_backoff_s", "base_url"},
     {"_target_", "model", "max_tokens", "cache_prompt", "api_key_env", "prompts_dir"}),
    ("anthropic_batch", {"batch_size", "gather_s", "poll_s", "ledger", "max_in_flight", "base_url"},
     {"_target_", "model", "max_tokens", "cache_prompt"}),
    ("openai", {"max_in_flight", "timeout_s", "base_url"}, {"model", "temperature", "max_tokens"}),
])
def test_the_manifest_leaves_out_what_the_oracle_calls_speed_only(oracle, speed_only, kept, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    cfg = composed(oracle, f"out_dir={tmp_path}", "oracle.backend.model=m")
    backend = instantiate(cfg.oracle.backend)
    oracle_settings = rectify_script().settings_of(cfg, backend)["oracle"]
    assert not speed_only & set(oracle_settings["backend"])
    assert kept <= set(oracle_settings["backend"])
    assert oracle_settings["prompts"] == backend.prompt_digest and len(oracle_settings["prompts"]) == 16
    assert oracle_settings["with_reference"] is False


def test_a_rerun_with_other_speed_settings_has_the_same_manifest_and_another_model_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    settings_of = rectify_script().settings_of

    def oracle_settings(*overrides):
        cfg = composed("anthropic_batch", f"out_dir={tmp_path}", *overrides)
        return settings_of(cfg, instantiate(cfg.oracle.backend))["oracle"]

    first = oracle_settings()
    assert oracle_settings("oracle.max_in_flight=8", "oracle.backend.poll_s=5", "oracle.backend.timeout_s=9") == first
    assert oracle_settings("oracle.backend.model=claude-other") != first


def test_an_edited_prompt_changes_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    shipped = ROOT / "src" / "spot" / "rectify" / "oracles" / "prompts"
    for f in shipped.glob("*.txt"):
        (prompts / f.name).write_text(f.read_text())
    config = {"model": "m"}
    same = AnthropicOracle(model="m").settings(config)
    assert AnthropicOracle(model="m", prompts_dir=str(prompts)).settings(config) == same
    (prompts / "rectify_system.txt").write_text("Fix it.")
    assert AnthropicOracle(model="m", prompts_dir=str(prompts)).settings(config)["prompts"] != same["prompts"]
    assert json.loads(json.dumps(same)) == same  # plain values: it is written to manifest.json
