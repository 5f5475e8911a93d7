"""The rectification pipeline: sample, verify, ask the Oracle, filter, write (docs/METHOD.md, "Data pipeline").

    python rectify.py                                    # toy world -> data/toy/
    python rectify.py model=hf model.path=Qwen/Qwen3-8B problems=gsm8k oracle=anthropic

Stages 1 (sample) and 3 (Oracle) are journaled under `journal_dir` (<out_dir>/journal/); verify, filter and
write are cheap and pure, so every run recomputes them from the journals. A rerun after a crash therefore redoes only
unjournaled work and writes the same files an uninterrupted run writes. Outputs in `<out_dir>/`:
    pairs.jsonl   {"prompt", "chosen" (y+), "rejected" (y-), "id", "answer", "r_lcs", "oracle"}
    rft.jsonl     {"prompt", "completion", "id", "answer"}   the policy's own correct samples
    direct.jsonl  {"prompt", "completion", "id", "answer"}   the Oracle's from-scratch solutions (SFT data)
    drops.jsonl   {"id", "stage", "reason", ...}             why each wrong sample gave no pair (a request the API
                                                             refused for good: "oracle_rejected", "status", "message")
    report.json   counts per stage, drop reasons, R_LCS distribution, Oracle tokens and cost, timings
    COMPLETE      written last, listing the files: the set is whole (each run replaces the last run's set)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

from spot.errors import UserError
from spot.rectify.config import Price, RectifyConfig  # noqa: F401 - Price: callers import both from here too
from spot.rectify.filtering import Tokenize, Verifier, filter_direct, filter_pairs
from spot.rectify.journal import Journal, close_all, journal_lock
from spot.rectify.oracle_stage import OracleJournals, Request, oracle_stage, rejections_by_key, replies_by_key
from spot.rectify.oracles.base import Oracle
from spot.rectify.problems import Item
from spot.rectify.report import make_report
from spot.rectify.sampling import Sampler, sample_stage
from spot.rows import jsonl_text, replace_output_set, write_atomic


class RectifyError(UserError):
    """A setting or state the user must fix; the message says what."""


OUTPUT_SET = ("pairs.jsonl", "rft.jsonl", "drops.jsonl", "direct.jsonl", "report.json")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_manifest(path: Path, settings: dict[str, dict]) -> None:
    """Refuses to resume journals made with other settings: their records would not be this run's."""
    old = json.loads(path.read_text()) if path.exists() else {}
    for stage, now in settings.items():
        if stage in old and old[stage] != now:
            before, after = _flat(old[stage]), _flat(now)
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            raise RectifyError(f"{path.parent}/{stage}.jsonl was made with other settings (changed: "
                               f"{', '.join(changed)}); use another out_dir, or delete that journal to redo "
                               "its stage")
    write_atomic(path, json.dumps({**old, **settings}, indent=2, sort_keys=True))


def problems_digest(items: list[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.prompt, it.answer, it.completion]).encode())
    return h.hexdigest()[:16]


def make_requests(items: list[Item], wrong: list[Item], completions: dict[str, str],
                  cfg: RectifyConfig) -> list[Request]:
    """Rectify every wrong sample; with `direct`, solve every problem once. Rectify calls go first."""
    ref = (lambda it: it.answer) if cfg.with_reference else (lambda it: None)
    reqs = [Request(f"rectify:{it.id}", "rectify", it.prompt, completions[it.id], ref(it)) for it in wrong]
    if cfg.direct:
        reqs += [Request(f"direct:{it.group}", "direct", it.prompt, None, ref(it))
                 for it in first_per_problem(items)]
    return reqs


def first_per_problem(items: list[Item]) -> list[Item]:
    seen: dict[str, Item] = {}
    for it in items:
        seen.setdefault(it.group, it)
    return list(seen.values())


def run(items: list[Item], sampler: Sampler, tokenize: Tokenize, verifier: Verifier, oracle: Oracle,
        cfg: RectifyConfig, settings: dict[str, dict]) -> dict:
    """Runs (or resumes) every stage and writes the outputs; returns the report.

    `settings` holds what each journaled stage depends on ({"samples": {...}, "oracle": {...}}); a rerun
    with other settings is refused rather than mixing two runs' records. One run at a time holds the
    journals (spot.rectify.journal.journal_lock): a second one started on them stops at once.
    """
    jdir = Path(cfg.journal_dir) if cfg.journal_dir else Path(cfg.out_dir) / "journal"
    jdir.mkdir(parents=True, exist_ok=True)
    with journal_lock(jdir):
        return _run(items, sampler, tokenize, verifier, oracle, cfg, settings, jdir)


def _run(items: list[Item], sampler: Sampler, tokenize: Tokenize, verifier: Verifier, oracle: Oracle,
         cfg: RectifyConfig, settings: dict[str, dict], jdir: Path) -> dict:
    out, t_start, seconds = Path(cfg.out_dir), time.time(), {}
    sampled_with = {**settings.get("samples", {}), "seed": cfg.seed, "chunk_size": cfg.chunk_size}
    if all(it.completion is not None for it in items):
        # completions came with the problems: nothing is sampled, so the policy (only its tokenizer is used),
        # the seed and the chunking are free to change
        sampled_with = {}
    settings = {**settings, "samples": {**sampled_with, "problems": problems_digest(items)}}
    check_manifest(jdir / "manifest.json", settings)

    t = time.time()
    samples = Journal(jdir / "samples.jsonl")
    completions, n_sampled = sample_stage(items, sampler, samples, cfg.chunk_size, cfg.seed, cfg.progress)
    samples.close()
    seconds["sample"] = time.time() - t

    t = time.time()
    verdicts = {it.id: verifier(completions[it.id], it.answer) for it in items}
    wrong = [it for it in items if not verdicts[it.id].correct]
    seconds["verify"] = time.time() - t

    t = time.time()
    journals = OracleJournals(*(Journal(jdir / name, group_commit=True)
                                for name in ("oracle.jsonl", "oracle_rejected.jsonl", "oracle_calls.jsonl")))
    requests = make_requests(items, wrong, completions, cfg)
    workers = 4 * cfg.max_in_flight  # see oracle_stage: backoff sleepers must not starve the wire
    try:
        counts = asyncio.run(oracle_stage(requests, oracle, journals, workers, cfg.progress, cfg.retry_rejected,
                                          cfg.stop_grace_s))
    finally:
        close_all([journals.replies, journals.rejected, journals.calls])
    replies = replies_by_key(requests, journals.replies.records)
    rejected = rejections_by_key(requests, journals.rejected.records, replies)
    seconds["oracle"] = time.time() - t

    t = time.time()
    pairs = filter_pairs(wrong, completions, replies, verifier, tokenize, cfg.gamma, oracle.name, rejected)
    direct = filter_direct(first_per_problem(items), replies, verifier, rejected) if cfg.direct else None
    rft = [{"prompt": it.prompt, "completion": completions[it.id], "id": it.id, "answer": it.answer}
           for it in items if verdicts[it.id].correct]
    seconds["filter"] = time.time() - t

    t = time.time()
    files = {"pairs.jsonl": jsonl_text(pairs.rows), "rft.jsonl": jsonl_text(rft),
             "drops.jsonl": jsonl_text(pairs.drops + (direct.drops if direct else []))}
    if direct is not None:
        files["direct.jsonl"] = jsonl_text(direct.rows)
    seconds["write"] = time.time() - t
    seconds["total"] = time.time() - t_start
    report = make_report(items, verdicts, n_sampled, requests, counts, journals.replies.records, pairs, direct, rft,
                         cfg, oracle.name, seconds, journals.calls.records)
    report["oracle_attempts_this_run"] = oracle.stats  # retries by kind, given up
    files["report.json"] = json.dumps(report, indent=2) + "\n"
    replace_output_set(out, files, OUTPUT_SET)  # replaces the last run's set whole, COMPLETE written last
    return report
