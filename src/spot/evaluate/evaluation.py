"""evaluate.py's job from plain objects: score a model (and its base) on suites, estimate the KL, write files.

`evaluate.py` builds the suites from the Hydra config and calls `evaluate_model`. Scoring is
`spot.evaluate.scoring.score_model`, the function train.py scores with, and metrics.json is assembled and
written by `spot.evaluate.metrics`, as train.py's is, so `report.py` reads the outputs of both the same way.
Completions are journaled in `<out_dir>/journal/` as they arrive (spot.evaluate.resume): evaluating into the
same directory again generates only what is missing.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spot.chat import ChatFormat
from spot.engines import HF, Engine, EngineError, EngineSpec, Weights
from spot.engines.base import OnFirstUse
from spot.evaluate.checkpoints import ModelSource, load_for_eval, load_tokenizer_for, resolve_source, weights_identity
from spot.evaluate.kl import KLSettings, kl_to_reference, spread_prompts
from spot.evaluate.metrics import assemble, summary_metrics, write_metrics, write_samples
from spot.evaluate.resume import CompletionJournal, side_settings
from spot.evaluate.scoring import Scores, score_model
from spot.evaluate.suites import Suite
from spot.generation import Sampling
from spot.rectify.journal import journal_lock
from spot.retry import RemoteFatal


@dataclass(frozen=True)
class EvalPlan:
    model: str  # hub id, directory, train.py run directory or .ckpt
    base: str | None = "auto"  # "auto": the run's base model (none for plain models); a path; None: skip
    dtype: str = "auto"
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    kl: KLSettings | None = field(default_factory=KLSettings)  # None: no KL estimate
    kl_prompts: tuple[str, ...] | None = None  # the KL's raw prompts; None: spread over the suites' prompts
    device: str = "auto"
    progress: bool = True
    enable_thinking: bool | None = None
    problem_template: str = "{prompt}"


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_info(source: ModelSource) -> dict:
    """What the evaluated model is: a train.py run's own description when there is one."""
    info = {"model": source.spec, "kind": source.kind, "base_model": source.base}
    if source.run_dir and (Path(source.run_dir) / "metrics.json").exists():
        info = {**json.loads((Path(source.run_dir) / "metrics.json").read_text()).get("run", {}), **info}
    info.setdefault("method", Path(source.run_dir or source.spec.rstrip("/")).name)
    return info


def score_source(source: ModelSource, engine: EngineSpec, chat: ChatFormat, suites: list[Suite], plan: EvalPlan,
                 journal: CompletionJournal, scratch: Path, in_memory) -> Scores:
    """Scores what `source` names with the chosen engine, reusing and filling `journal`. The engine is opened
    on the first prompt the journal lacks, so a rerun whose completions are all journaled loads nothing."""
    opened = OnFirstUse(lambda: open_engine(source, engine, chat, plan, scratch, in_memory))
    try:
        with kept_on_stop(journal):
            return score_model(opened, chat, suites, plan.sampling, seed=plan.seed, progress=plan.progress,
                               journal=journal)
    finally:
        opened.close()


def open_engine(source: ModelSource, engine: EngineSpec, chat: ChatFormat, plan: EvalPlan, scratch: Path,
                in_memory) -> Engine:
    """`engine` on `source`, in the form it takes: the model `in_memory(source)` gives, or its directory."""
    return engine.open(Weights(lambda: in_memory(source), lambda: on_disk(source, plan.dtype, scratch)),
                       chat.tokenizer)


def on_disk(source: ModelSource, dtype: str, scratch: Path) -> str:
    """A directory or hub id holding `source`: a Lightning checkpoint or an adapter is first written out whole
    as a model directory under `scratch`."""
    if not (source.ckpt or source.adapter):
        return source.weights
    loaded, tokenizer = load_for_eval(source, dtype)
    loaded.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    return str(scratch)


@contextmanager
def kept_on_stop(journal: CompletionJournal):
    """A generation that stops (a server that gives up or refuses a request) says where what came back is."""
    try:
        yield
    except (EngineError, RemoteFatal) as e:
        raise type(e)(f"{e}; {len(journal.done)} completions are journaled in {journal.journal.path}: "
                      "evaluating into the same directory again generates only the rest") from None


def score_side(side: str, source: ModelSource, engine: EngineSpec, chat: ChatFormat, suites: list[Suite],
               plan: EvalPlan, out_dir: Path, in_memory) -> Scores:
    """One model's scores ("trained" or "base"), journaled in <out_dir>/journal/<side>.jsonl under the settings
    its completions depend on (spot.evaluate.resume)."""
    settings = side_settings(weights_identity(source), engine.settings(), plan.sampling, plan.seed, chat)
    journal = CompletionJournal(out_dir / "journal" / f"{side}.jsonl", settings)
    scratch = out_dir / ("weights" if side == "trained" else f"{side}_weights")
    try:
        return score_source(source, engine, chat, suites, plan, journal, scratch, in_memory)
    finally:
        journal.close()


def evaluate_model(plan: EvalPlan, suites: list[Suite], out_dir: Path, engine: EngineSpec = HF) -> dict:
    """Scores the model and, when there is one, its base, with `engine` (transformers' generate by default);
    estimates the KL between them; writes samples.jsonl, base_samples.jsonl and metrics.json into `out_dir`
    and returns the metrics. One evaluation at a time holds <out_dir>/journal/ (spot.rectify.journal_lock)."""
    explicit_base = plan.base if plan.base not in (None, "auto") else None
    source = resolve_source(plan.model, explicit_base)
    base_spec = source.base if plan.base == "auto" else plan.base
    base_source = resolve_source(base_spec) if base_spec and suites else None
    chat = ChatFormat(load_tokenizer_for(source), plan.enable_thinking, plan.problem_template)
    device, memory = pick_device(plan.device), {}

    def in_memory(src: ModelSource):  # each model is loaded at most once: to score it (hf) and for the KL
        if src.spec not in memory:
            memory[src.spec] = load_for_eval(src, plan.dtype)[0].to(device)
        return memory[src.spec]

    (out_dir / "journal").mkdir(parents=True, exist_ok=True)
    with journal_lock(out_dir / "journal"):
        trained = score_side("trained", source, engine, chat, suites, plan, out_dir, in_memory)
        scored = score_side("base", base_source, engine, chat, suites, plan, out_dir, in_memory) if base_source \
            else None
    write_samples(out_dir / "samples.jsonl", trained.records, "trained")
    base, extra = None, {}
    if scored:
        write_samples(out_dir / "base_samples.jsonl", scored.records, "base")
        base = {**scored.as_dict(), "model": base_spec}
        if plan.kl is not None and plan.kl.n_prompts > 0:  # log-probs need both models in memory
            prompts = list(plan.kl_prompts) if plan.kl_prompts else spread_prompts([s.prompts for s in suites],
                                                                                   plan.kl.n_prompts)
            extra["kl"] = kl_to_reference(in_memory(source), in_memory(base_source), chat, prompts, plan.kl,
                                          seed=plan.seed, progress=plan.progress)
            extra["kl"]["prompts"] = "eval.kl_prompts" if plan.kl_prompts else "the suites' prompts"
    memory.clear()
    metrics = assemble(run_info(source), suites, plan.sampling, plan.seed, trained.as_dict() if suites else None,
                       base, generation=engine.name, **extra)
    write_metrics(out_dir, metrics)
    return metrics


def evaluate_completions(path: str, suites: list[Suite], out_dir: Path, sampling: Sampling, seed: int = 0) -> dict:
    """Scores a jsonl of {"prompt": raw problem, "completion"} produced elsewhere with the suites' scorers;
    `sampling` is recorded as what the file's producer said it used."""
    from spot.evaluate.scoring import score_completions
    from spot.rows import iter_rows

    scores = score_completions(list(iter_rows(path, key="completions")), suites)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_samples(out_dir / "samples.jsonl", scores.records, "trained")
    metrics = assemble({"model": path, "kind": "completions", "method": Path(path).stem}, suites, sampling, seed,
                       scores.as_dict(), generation="completions file")
    write_metrics(out_dir, metrics)
    return metrics


def log_to_wandb(metrics: dict, out_dir: Path, project: str, mode: str, group: str | None, tags: list[str],
                 config: dict) -> None:
    """One W&B run whose summary holds `summary_metrics`; offline by default (`wandb sync` uploads it)."""
    if mode == "disabled":
        return
    import wandb

    run = wandb.init(project=project, mode=mode, dir=str(out_dir), group=group, tags=tags, config=config,
                     job_type="evaluate", name=str(metrics["run"].get("method")))
    run.summary.update(summary_metrics(metrics))
    run.finish()
