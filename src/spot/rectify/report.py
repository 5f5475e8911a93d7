"""Stage 5's report: what each stage counted, why pairs were dropped, how big the edits were, what it cost."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spot.answers import Verdict
    from spot.rectify.config import RectifyConfig
    from spot.rectify.filtering import Filtered
    from spot.rectify.oracle_stage import Request
    from spot.rectify.problems import Item


def ratio_summary(ratios: list[float], gamma: float) -> dict:
    """R_LCS of every pair whose y+ verified correct, before the gamma cut: quantiles and a 0.1 histogram."""
    if not ratios:
        return {"count": 0}
    xs = sorted(ratios)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    bins = Counter(min(9, int(x * 10)) for x in xs)
    return {
        "count": len(xs), "mean": round(sum(xs) / len(xs), 4),
        "quantiles": {f"p{int(p * 100)}": round(q(p), 4) for p in (0.1, 0.25, 0.5, 0.75, 0.9)},
        "histogram": {f"{b / 10:.1f}-{(b + 1) / 10:.1f}": bins.get(b, 0) for b in range(10)},
        "kept_fraction": round(sum(x <= gamma for x in xs) / len(xs), 4),
    }


# what each event of the calls journal (spot.rectify.oracle_stage) does to the count of a call's open attempts: one
# that went on the wire and never came off (killed, or "cancelled" by a stop) stays open, and so does one whose
# reply arrived but could not be journaled ("unjournaled")
_OPENS = {"on_wire": 1, "unjournaled": 1, "off_wire": -1}


def lost_in_flight(calls: list[dict]) -> list[str]:
    """Keys of the requests that were on the wire when their run was killed or stopped (an "on_wire" with no
    "off_wire"), or whose reply could not be journaled: the Oracle may have answered, and billed, a reply
    nobody journaled. At most one per call and run."""
    open_attempts: dict[tuple[str, str], int] = {}
    for c in calls:
        k = (c["run"], c["key"])
        open_attempts[k] = open_attempts.get(k, 0) + _OPENS.get(c["event"], 0)
    return [key for (_, key), n in open_attempts.items() if n > 0]


def usage(records: list[dict], cfg: RectifyConfig, calls: list[dict] | None = None) -> dict:
    """Tokens of every Oracle reply journaled (every call paid for, this run and earlier), and their cost;
    with the calls journal, the calls lost in flight and their likely cost (each at the mean cost of a
    journaled reply: their tokens never came back, so this is an estimate, not a bill)."""
    tokens = {k: sum(r.get(k, 0) for r in records)
              for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}
    p = cfg.price
    cost = (tokens["input_tokens"] * p.input + tokens["output_tokens"] * p.output
            + tokens["cache_read_tokens"] * p.cache_read + tokens["cache_write_tokens"] * p.cache_write) / 1e6
    lost = len(lost_in_flight(calls or []))
    lost_cost = cost / len(records) * lost if records else 0.0
    return {"replies_paid": len(records), **tokens, "cost_usd": round(cost, 4),
            "calls_lost_in_flight": lost, "cost_usd_lost_estimate": round(lost_cost, 4),
            "cost_usd_with_lost_estimate": round(cost + lost_cost, 4)}


def make_report(items: list[Item], verdicts: dict[str, Verdict], n_sampled: int, requests: list[Request],
                counts: dict[str, int], records: list[dict], pairs: Filtered, direct: Filtered | None,
                rft: list[dict], cfg: RectifyConfig, oracle_name: str, seconds: dict[str, float],
                calls: list[dict] | None = None) -> dict:
    n_correct = sum(v.correct for v in verdicts.values())
    notes = Counter(v.note for v in verdicts.values() if not v.correct and v.note)
    drop_reasons = Counter(d["reason"] for d in pairs.drops)
    return {
        "out_dir": cfg.out_dir, "oracle": oracle_name, "gamma": cfg.gamma,
        "with_reference": cfg.with_reference,
        "counts": {
            "problems": len({it.group for it in items}), "samples": len(items),
            "sampled_this_run": n_sampled,
            "correct": n_correct, "wrong": len(items) - n_correct, "wrong_by_note": dict(notes),
            "oracle_requests": len(requests), "oracle_distinct_requests": len({r.content for r in requests}),
            **{f"oracle_{k}_this_run": v for k, v in counts.items()},
            "rectified_correct": len(pairs.ratios), "pairs": len(pairs.rows), "rft": len(rft),
            "direct": len(direct.rows) if direct else 0,
        },
        "drops": {"rectify": dict(sorted(drop_reasons.items())),
                  "direct": dict(sorted(Counter(d["reason"] for d in direct.drops).items()))
                  if direct else {}},
        "r_lcs": ratio_summary(pairs.ratios, cfg.gamma),
        "oracle_usage": usage(records, cfg, calls),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
