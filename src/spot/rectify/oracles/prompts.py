"""The SPoT Oracle prompt (docs/METHOD.md, "Data pipeline") and the parsing of its reply.

The prompt's fixed part lives in text files under `prompts/` that a user can read and edit (point
`oracle.backend.prompts_dir` at a copy). Each kind has a system part, the same for every call and therefore
cacheable, and a user part with `{problem}`, `{answer}` and `{reference}` slots:
    rectify_system.txt, rectify_user.txt, rectify_user_with_reference.txt     the surgical edit (y+)
    direct_system.txt, direct_user.txt, direct_user_with_reference.txt        a from-scratch solution (SFT)
The Oracle wraps its answer between `=== CORRECTED STARTED ===` and `=== CORRECTED ENDED ===`; only the text
between the markers is kept.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).with_name("prompts")
FILES = ("rectify_system", "rectify_user", "rectify_user_with_reference",
         "direct_system", "direct_user", "direct_user_with_reference")
START, END = "=== CORRECTED STARTED ===", "=== CORRECTED ENDED ==="

_SLOT = re.compile(r"\{(problem|answer|reference)\}")
_START = re.compile(r"^[ \t]*=+[ \t]*CORRECTED STARTED[ \t]*=+[ \t]*$", re.M)
_END = re.compile(r"^[ \t]*=+[ \t]*CORRECTED ENDED[ \t]*=+[ \t]*$", re.M)
_FENCE = re.compile(r"^```[\w-]*\n(.*)\n```$", re.S)


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str


class Prompts:
    """The six template files of one prompts directory."""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory) if directory else PROMPTS_DIR
        missing = [f"{name}.txt" for name in FILES if not (self.dir / f"{name}.txt").is_file()]
        if missing:
            raise FileNotFoundError(f"oracle.backend.prompts_dir={self.dir}: missing {', '.join(missing)}")
        self.text = {name: (self.dir / f"{name}.txt").read_text(encoding="utf-8").strip() for name in FILES}

    @property
    def digest(self) -> str:
        """Changes when any template does: journaled replies to another prompt are not this run's."""
        return hashlib.sha256("\0".join(self.text[n] for n in FILES).encode()).hexdigest()[:16]

    def build(self, kind: str, problem: str, answer: str | None = None,
              reference: str | None = None) -> Prompt:
        """kind "rectify" or "direct"; the reference variant is used when a reference is given."""
        user = f"{kind}_user_with_reference" if reference is not None else f"{kind}_user"
        values = {"problem": problem, "answer": answer or "", "reference": reference or ""}
        # one pass, so a `{answer}` inside the problem text is never substituted
        return Prompt(self.text[f"{kind}_system"], _SLOT.sub(lambda m: values[m.group(1)], self.text[user]))


def strip_markers(raw: str) -> tuple[str | None, str | None]:
    """(text between the markers, None) or (None, why it is unusable).

    The last start marker counts (a reply may quote the shape first); a missing end marker means the reply was
    cut short, so it is unusable rather than guessed at.
    """
    starts = list(_START.finditer(raw))
    if not starts:
        return None, "no_markers"
    begin = starts[-1].end()
    end = _END.search(raw, begin)
    if end is None:
        return None, "no_end_marker"
    text = raw[begin : end.start()].strip("\n").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        return None, "empty"
    return text, None
