"""Stage 4: keep a rectified pair only when the Oracle's answer is right and its edit is small.

Every item that does not end as a pair or an RFT row is accounted for with one drop reason:
    no_reply             the Oracle call failed after every retry (a rerun asks again)
    oracle_rejected      the API refused the request for good (413 too large, 400 invalid, no readable reply):
                         the drop carries its "status" and "message"; oracle.retry_rejected=true asks again
    oracle_error:<why>   the reply was unusable (no markers, empty, refused, malformed)
    oracle_no_answer     the corrected answer has no final answer to check
    oracle_wrong         the corrected answer's final answer is not the reference
    edit_too_large       R_LCS > gamma: y+ is too far from the policy's own text
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from spot.answers import Verdict
from spot.rectify.lcs import edit_ratio
from spot.rectify.oracles.base import OracleReply
from spot.rectify.problems import Item

Verifier = Callable[[str, str], Verdict]
Tokenize = Callable[[str], list[int]]


@dataclass
class Filtered:
    rows: list[dict] = field(default_factory=list)
    drops: list[dict] = field(default_factory=list)  # {"id", "stage", "reason", ...}
    ratios: list[float] = field(default_factory=list)  # R_LCS of every pair whose y+ verified correct


def _reply_problem(reply: OracleReply | None, verifier: Verifier, answer: str) -> str | None:
    """The drop reason for an Oracle reply, or None when its answer verifies correct."""
    if reply is None:
        return "no_reply"
    if reply.error or not reply.text:
        return f"oracle_error:{reply.error or 'empty'}"
    verdict = verifier(reply.text, answer)
    if verdict.predicted is None:
        return "oracle_no_answer"
    return None if verdict.correct else "oracle_wrong"


def _verified(items: list[Item], key: Callable[[Item], str], stage: str, replies: dict[str, OracleReply],
              rejected: dict[str, dict], verifier: Verifier, out: Filtered) -> Iterator[tuple[Item, OracleReply]]:
    """(item, reply) for every item whose Oracle reply (`<stage>:<key>`) verifies; each other item is
    recorded in `out.drops` with the reason (a rejection with the API's status and message)."""
    for it in items:
        request = f"{stage}:{key(it)}"
        if request in rejected:
            out.drops.append({"id": key(it), "stage": stage, "reason": "oracle_rejected", **rejected[request]})
            continue
        reply = replies.get(request)
        reason = _reply_problem(reply, verifier, it.answer)
        if reason is None:
            yield it, reply
        else:
            out.drops.append({"id": key(it), "stage": stage, "reason": reason})


def filter_pairs(wrong: list[Item], completions: dict[str, str], replies: dict[str, OracleReply],
                 verifier: Verifier, tokenize: Tokenize, gamma: float, oracle_name: str,
                 rejected: dict[str, dict] | None = None) -> Filtered:
    """Pairs (prompt, chosen = y+, rejected = y-) in the items' order, with R_LCS over policy tokens.
    `rejected`: the requests the API refused for good (spot.rectify.oracle_stage.rejections_by_key)."""
    out = Filtered()
    for it, reply in _verified(wrong, lambda it: it.id, "rectify", replies, rejected or {}, verifier, out):
        chosen, rejected = reply.text, completions[it.id]
        ratio = round(edit_ratio(tokenize(rejected), tokenize(chosen)), 6)
        out.ratios.append(ratio)
        if ratio > gamma:
            out.drops.append({"id": it.id, "stage": "rectify", "reason": "edit_too_large", "r_lcs": ratio})
            continue
        out.rows.append({"prompt": it.prompt, "chosen": chosen, "rejected": rejected, "id": it.id,
                         "answer": it.answer, "r_lcs": ratio, "oracle": oracle_name})
    return out


def filter_direct(problems: list[Item], replies: dict[str, OracleReply], verifier: Verifier,
                  rejected: dict[str, dict] | None = None) -> Filtered:
    """The Oracle's from-scratch solutions (SFT data), kept when their answer verifies correct."""
    out = Filtered()
    for it, reply in _verified(problems, lambda it: it.group, "direct", replies, rejected or {}, verifier, out):
        out.rows.append({"prompt": it.prompt, "completion": reply.text, "id": it.group, "answer": it.answer})
    return out
