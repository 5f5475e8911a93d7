"""What the three entry points (train.py, evaluate.py, rectify.py) share at the Hydra edge.

Only code here and in the entry points turns config nodes into objects (`hydra.utils.instantiate`);
everything below takes plain typed arguments. A constructor's own `UserError` (a bad problem file, a missing
key, a suite that cannot be read) reaches the entry point as itself, not wrapped in Hydra's
InstantiationException, so it can be printed as one line (spot.errors.exit_with).
"""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spot.errors import ConfigError, UserError
from spot.evaluate.suites import Suite
from spot.generation import Sampling


def build(node: DictConfig, key: str):
    """instantiate(node), with a user error inside the constructor passed through as itself and a wrong
    parameter name reported against `key`."""
    try:
        return instantiate(node, _partial_=True)()
    except TypeError as e:  # an override naming a parameter the builder does not have
        if "argument" not in str(e):
            raise
        raise ConfigError(f"{key}: {e}") from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise


def build_suites(eval_cfg: DictConfig) -> list[Suite]:
    """Every suite selected with eval= (one node per file of conf/eval/ under eval.suites), with eval.limit,
    eval.n_samples and eval.max_new_tokens applied to all of them."""
    from spot.evaluate.suite_files import adjust

    suites: list[Suite] = []
    for name, node in (eval_cfg.get("suites") or {}).items():
        built = build(node, f"eval.suites.{name}")
        suites += [built] if isinstance(built, Suite) else list(built)
    return adjust(suites, limit=eval_cfg.get("limit"), n_samples=eval_cfg.get("n_samples"),
                  max_new_tokens=eval_cfg.get("max_new_tokens"))


def engine_of(node: DictConfig):
    """The EngineSpec that generation= selects, checked now: a missing engine names its pip command before any
    model or data is loaded."""
    spec = build(node, "generation")
    spec.check()
    return spec


def sampling_of(node: DictConfig, key: str) -> Sampling:
    """A Sampling from the config node at `key`; an unknown or out-of-range setting is named by its key."""
    values = OmegaConf.to_container(node, resolve=True)
    unknown = sorted(set(values) - set(Sampling.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: not a sampling setting (known: "
                          f"{', '.join(Sampling.__dataclass_fields__)})")
    try:
        return Sampling(**values)
    except ConfigError as e:  # Sampling names its fields "sampling.<field>"
        raise ConfigError(f"{key}{str(e).removeprefix('sampling')}") from None
