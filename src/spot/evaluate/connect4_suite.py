"""The Connect4 suite (group ood): the prompt, the reader of position files, and the paper's scorer.

The model sees the rules, the board (spot.evaluate.connect4.board_text) and the answer format, and writes

    [Intermediate Thinking Results 1: (1,4), (2,0)]     its own immediate winning moves, or None
    [Intermediate Thinking Results 2: None]             the opponent's, or None
    Chosen move: (1,4)

Each result list is scored as the paper scores it: right when its set of cells equals the answer's (order and
repeats do not matter, None is the empty set); a list that is missing or cannot be read is wrong. The item's
score is the mean of the two, so the suite's accuracy is the mean of the two sub-scores, which metrics.json
also reports (details.connect4.parts: mine, theirs). The chosen move is asked for, as the authors' prompt asks
for it, but not scored.

The rules are in the user turn, written before the board (the suite's template): the project's chat format has
no system turn, and a template keeps the raw problem (what a completions file's "prompt" names) the board text.
"""

from __future__ import annotations

import re

from spot.answers import Verdict
from spot.errors import DataError
from spot.evaluate.connect4 import COLS, ROWS, positions
from spot.evaluate.suite_files import read_rows
from spot.evaluate.suites import Suite

TEMPLATE = (
    "Let's play Connect Four on a board of 6 rows and 7 columns. Players take turns dropping one of their "
    "pieces into a column that is not full; it falls to the lowest empty cell of that column, so a move is named "
    "by the cell (row,column) where the piece lands. A player who gets four of their pieces in a line, "
    "horizontally, vertically or diagonally, wins.\n\n"
    "{prompt}\n\n"
    "Before choosing your move, find:\n"
    "1. your winning moves: the valid moves that give you four in a line at once;\n"
    "2. your opponent's winning moves: the valid moves with which your opponent would get four in a line at "
    "once if it were their turn.\n"
    "Write each as a list of cells, or None when there is none, in exactly this form:\n"
    "[Intermediate Thinking Results 1: (r,c), (r,c)]\n"
    "[Intermediate Thinking Results 2: None]\n"
    "Then end with the move you play:\n"
    "Chosen move: (r,c)"
)
PARTS = ("mine", "theirs")  # result 1: the player's own winning moves; result 2: the opponent's

# The last "[... Results k: ...]" of each kind; the list may sit in its own brackets.
_RESULT = re.compile(r"\[\s*(?:Intermediate\s+Thinking\s+)?Results?\s*([12])\s*:((?:[^\[\]]|\[[^\[\]]*\]){0,400})\]",
                     re.I)
_CELL = r"\(\s*(\d+)\s*,\s*(\d+)\s*\)"
_CELLS = re.compile(rf"{_CELL}(?:\s*[,;]?\s*{_CELL})*")
_CHOSEN = re.compile(rf"Chosen\s+move\s*:\s*\**\s*{_CELL}", re.I)


def parse_cells(text: str) -> frozenset[tuple[int, int]] | None:
    """A result list's cells; the empty set for None; None when the text is not a list of cells or None."""
    text = text.strip().strip("[]").strip().rstrip(".").strip()
    if text.lower() == "none":
        return frozenset()
    if not _CELLS.fullmatch(text):
        return None
    return frozenset((int(r), int(c)) for r, c in re.findall(_CELL, text))


def parse_results(completion: str) -> dict[str, frozenset | None]:
    """{"mine": cells or None (missing or unreadable), "theirs": ...} from the last result line of each kind."""
    found: dict[str, str] = {}
    for m in _RESULT.finditer(completion):
        found[PARTS[int(m.group(1)) - 1]] = m.group(2)
    return {part: parse_cells(found[part]) if part in found else None for part in PARTS}


def cells_text(cells: frozenset | None) -> str:
    if cells is None:
        return "?"
    return ", ".join(f"({r},{c})" for r, c in sorted(cells)) or "None"


class Connect4Scorer:
    """Each result list by exact set match against the answer {"mine": [[r, c], ...], "theirs": [...]}."""

    name = "connect4"

    def __call__(self, completion: str, answer: dict) -> Verdict:
        got = parse_results(completion)
        right = {part: got[part] is not None and got[part] == frozenset(map(tuple, answer[part])) for part in PARTS}
        unread = [str(k + 1) for k, part in enumerate(PARTS) if got[part] is None]
        chosen = _CHOSEN.findall(completion)
        predicted = f"mine: {cells_text(got['mine'])}; theirs: {cells_text(got['theirs'])}" + (
            f"; chosen ({chosen[-1][0]},{chosen[-1][1]})" if chosen else "")
        note = f"format error in result {' and '.join(unread)}" if unread else ""
        return Verdict(all(right.values()), predicted, note, parts=tuple(right.items()))


def read_answer(where: str, value) -> dict[str, list[list[int]]]:
    """The authors' [[mine], [theirs]] with cells as [r, c] or "(r,c)", checked and kept as sorted lists."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise DataError(f"{where}: field 'answer' must be [[your winning cells], [the opponent's]], "
                        f"got {value!r}"[:300])
    out = {}
    for part, cells in zip(PARTS, value):
        if cells is None or (isinstance(cells, str) and cells.strip().lower() == "none"):
            cells = []
        parsed = set()
        for given in cells if isinstance(cells, list | tuple) else [cells]:
            cell = given
            if isinstance(given, str):
                m = re.fullmatch(r"\s*" + _CELL + r"\s*", given)
                cell = (int(m.group(1)), int(m.group(2))) if m else None
            ok = (isinstance(cell, list | tuple) and len(cell) == 2
                  and all(isinstance(x, int) and not isinstance(x, bool) for x in cell)
                  and 0 <= cell[0] < ROWS and 0 <= cell[1] < COLS)
            if not ok:
                raise DataError(f"{where}: field 'answer' has {given!r}, not a cell (r, c) of the "
                                f"{ROWS}x{COLS} board"[:300])
            parsed.add(tuple(cell))
        out[part] = [list(c) for c in sorted(parsed)]
    return out


def connect4_suite(name: str = "connect4", group: str = "ood", path: str | None = None, n: int = 500,
                   seed: int = 0, limit: int | None = None, n_samples: int = 1, max_new_tokens: int = 4096,
                   template: str | None = None) -> Suite:
    """Positions from a jsonl of {"state", "answer"} (`path`: the authors' file, or one written by
    `python -m spot.evaluate.connect4`), or `n` generated now from `seed` when `path` is null."""
    if path:
        rows = read_rows(name, path, split="train")
    else:
        rows = ((f"connect4 position {i + 1} (seed {seed})", r) for i, r in enumerate(positions(n, seed)))
    prompts, answers, meta = [], [], []
    for where, row in rows:
        if limit is not None and len(prompts) >= limit:
            break
        state = row.get("state")
        if not isinstance(state, str) or not state.strip():
            raise DataError(f"{where}: needs a non-empty text field 'state' (the board)")
        if "answer" not in row:
            raise DataError(f"{where}: no field 'answer' ([[your winning cells], [the opponent's]])")
        answers.append(read_answer(where, row["answer"]))
        prompts.append(state.strip())
        meta.append({"source": where})
    if not prompts:
        raise DataError(f"suite {name}: {path} has no rows")
    return Suite(name, group, prompts, answers, Connect4Scorer(), max_new_tokens=max_new_tokens,
                 n_samples=n_samples, meta=meta, template=template or TEMPLATE)
