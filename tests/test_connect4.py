"""The Connect4 suite: generated positions checked by an independent brute force, the paper's scoring of the two
result lists, the authors' file shape, and `evaluate.py completions=... "eval=[connect4]"` end to end."""

import json
import re
import subprocess
import sys

import pytest
from test_evaluate_cli import QUIET, ROOT, evaluate

from spot.errors import DataError
from spot.evaluate.connect4 import positions
from spot.evaluate.connect4_suite import Connect4Scorer, connect4_suite

# ------------------------------------------------------------------ an independent brute force, from the text


def board_of(state: str) -> dict[tuple[int, int], str]:
    """The cells the state text shows, read back from its "(r,c):V" tokens (not from the generator's board)."""
    cells = {(int(r), int(c)): v for r, c, v in re.findall(r"\((\d+),(\d+)\):([XO_])", state)}
    assert len(cells) == 6 * 7, state
    return cells


def four_anywhere(cells: dict, piece: str) -> bool:
    """Every window of four cells on the board, in every direction, all `piece`?"""
    for r in range(6):
        for c in range(7):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                window = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(cells.get(cell) == piece for cell in window):
                    return True
    return False


def brute_force_wins(cells: dict, piece: str) -> set[tuple[int, int]]:
    """Try every column: drop the piece to the lowest empty cell, then look at the whole board for four."""
    wins = set()
    for c in range(7):
        empty = [r for r in range(6) if cells[(r, c)] == "_"]
        if not empty:
            continue
        after = dict(cells)
        after[(min(empty), c)] = piece
        if four_anywhere(after, piece):
            wins.add((min(empty), c))
    return wins


def test_generated_answers_agree_with_a_brute_force_check():
    rows = positions(300, seed=7)
    kinds = set()
    for row in rows:
        cells = board_of(row["state"])
        xs, os_ = sum(v == "X" for v in cells.values()), sum(v == "O" for v in cells.values())
        assert xs == os_ + 1 and "You are player O" in row["state"]  # X began; it is O's turn
        assert not four_anywhere(cells, "X") and not four_anywhere(cells, "O")  # the game is still on
        for (r, c), v in cells.items():  # gravity: nothing floats
            assert v == "_" or r == 0 or cells[(r - 1, c)] != "_"
        mine, theirs = row["answer"]
        assert {tuple(x) for x in mine} == brute_force_wins(cells, "O")
        assert {tuple(x) for x in theirs} == brute_force_wins(cells, "X")
        kinds.add((bool(mine), bool(theirs)))
    assert kinds == {(False, False), (True, False), (False, True), (True, True)}
    assert len({r["state"] for r in rows}) == len(rows)


def test_positions_are_seeded():
    assert positions(20, seed=3) == positions(20, seed=3)
    assert positions(20, seed=3) != positions(20, seed=4)
    assert positions(4, seed=3) == positions(20, seed=3)[:4]


# ------------------------------------------------------------------ scoring as the paper scores it

ANSWER = {"mine": [[1, 4], [2, 0]], "theirs": []}


def lines(one: str, two: str, chosen: str = "(1,4)") -> str:
    return (f"Let me look at the board...\n[Intermediate Thinking Results 1: {one}]\n"
            f"[Intermediate Thinking Results 2: {two}]\nChosen move: {chosen}")


@pytest.mark.parametrize("completion, mine, theirs", [
    (lines("(1,4), (2,0)", "None"), True, True),                    # both right
    (lines("(2,0), (1,4)", "none"), True, True),                    # reordered cells, None in any case
    (lines("(2, 0),(1 ,4), (2,0)", "None"), True, True),            # spaces and a repeat: a set
    (lines("[(1,4), (2,0)]", "None"), True, True),                  # the list in its own brackets
    (lines("(1,4)", "None"), False, True),                          # a missing win: wrong set
    (lines("(1,4), (2,0), (0,3)", "None"), False, True),            # an extra cell: wrong set
    (lines("None", "(0,3)"), False, False),                         # None where there are wins
    (lines("(1,4), (2,0)", ""), True, False),                       # an empty list is a format error, not None
    (lines("(1,4), (2,0)", "column 3"), True, False),               # unreadable
    (lines("1,4 and 2,0", "None"), False, True),                    # cells without parentheses
    ("[Intermediate Thinking Results 1: (1,4), (2,0)]", True, False),  # result 2 missing
    ("I would play the middle column.", False, False),              # no results at all
])
def test_each_result_list_by_exact_set_match(completion, mine, theirs):
    verdict = Connect4Scorer()(completion, ANSWER)
    assert dict(verdict.parts) == {"mine": mine, "theirs": theirs}
    assert verdict.correct == (mine and theirs)
    assert verdict.score == (mine + theirs) / 2


def test_the_last_result_lines_count_and_the_note_names_format_errors():
    restated = ("The format is [Intermediate Thinking Results 1: (r,c), (r,c)]. "
                + lines("(2,0), (1,4)", "None"))
    assert Connect4Scorer()(restated, ANSWER).correct
    verdict = Connect4Scorer()("[Intermediate Thinking Results 2: maybe]", ANSWER)
    assert verdict.note == "format error in result 1 and 2" and verdict.predicted == "mine: ?; theirs: ?"
    right = Connect4Scorer()(lines("(1,4), (2,0)", "None", chosen="(2,0)"), ANSWER)
    assert right.predicted == "mine: (1,4), (2,0); theirs: None; chosen (2,0)"


# ------------------------------------------------------------------ the authors' file shape


def test_reads_the_authors_shape_with_either_cell_spelling(tmp_path):
    path = tmp_path / "theirs.jsonl"
    rows = [{"state": "board one", "answer": [["(1,4)", "(2,0)"], []]},
            {"state": "board two", "answer": [[], [[0, 3]]]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = connect4_suite(path=str(path), n_samples=5)
    assert suite.prompts == ["board one", "board two"] and suite.group == "ood" and suite.n_samples == 5
    assert suite.answers == [{"mine": [[1, 4], [2, 0]], "theirs": []}, {"mine": [], "theirs": [[0, 3]]}]
    assert "board one" in suite.template.replace("{prompt}", suite.prompts[0])
    assert "[Intermediate Thinking Results 1:" in suite.template and "Chosen move:" in suite.template


@pytest.mark.parametrize("row, message", [
    ({"state": "b", "answer": [[[1, 4]]]}, r"bad.jsonl:2: field 'answer' must be \[\[your winning cells\]"),
    ({"state": "b", "answer": [[[9, 4]], []]}, r"bad.jsonl:2: field 'answer' has \[9, 4\], not a cell"),
    ({"state": "b", "answer": [["1,4"], []]}, r"bad.jsonl:2: field 'answer' has '1,4', not a cell"),
    ({"state": "", "answer": [[], []]}, r"bad.jsonl:2: needs a non-empty text field 'state'"),
    ({"state": "b"}, r"bad.jsonl:2: no field 'answer'"),
])
def test_a_bad_row_names_file_and_line(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"state": "a", "answer": [[], []]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message):
        connect4_suite(path=str(path))


# ------------------------------------------------------------------ the commands, end to end


def test_command_writes_positions_and_evaluate_scores_hand_made_completions(tmp_path):
    out = tmp_path / "positions.jsonl"
    proc = subprocess.run([sys.executable, "-m", "spot.evaluate.connect4", "--n", "8", "--seed", "5", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == positions(8, seed=5) and not list(tmp_path.glob(".*.tmp-*"))

    def cells(xs):
        return ", ".join(f"({r},{c})" for r, c in reversed(xs)) or "None"  # reordered on purpose

    completions = []
    for k, row in enumerate(rows):
        mine, theirs = row["answer"]
        if k < 4:  # both lists right
            one, two = cells(mine), cells(theirs)
        elif k < 6:  # only the first right; the second a format error
            one, two = cells(mine), "?"
        else:  # only the second right: the first a wrong set
            one, two = "None" if mine else "(0,0)", cells(theirs)
        completions.append({"prompt": row["state"], "completion": lines(one, two)})
    comp = tmp_path / "completions.jsonl"
    comp.write_text("".join(json.dumps(c) + "\n" for c in completions))
    run_dir = tmp_path / "eval"
    proc = evaluate(ROOT, f"completions={comp}", "eval=[connect4]", f"eval.suites.connect4.path={out}", *QUIET,
                    f"hydra.run.dir={run_dir}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    details = metrics["trained"]["details"]["connect4"]
    assert details["parts"] == {"mine": 6 / 8, "theirs": 6 / 8}
    assert details["accuracy"] == pytest.approx(0.75) and details["group"] == "ood"
    assert metrics["trained"]["groups"] == {"ood": pytest.approx(0.75)}
    assert metrics["trained"]["correct"]["connect4"] == [1.0] * 4 + [0.5] * 4
    assert "connect4/mine" in proc.stdout and "connect4/theirs" in proc.stdout
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples[4]["note"] == "format error in result 2" and samples[4]["parts"] == {"mine": True,
                                                                                         "theirs": False}


def test_paper_composes_all_nine_suites_with_connect4_in_ood():
    from spot.evaluate.prepare import compose

    cfg = compose(["eval=paper"])
    suites = cfg.eval.suites
    assert sorted(suites) == sorted(["aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench",
                                     "gpqa_diamond", "connect4", "ifeval"])
    assert {k for k, v in suites.items() if v.group == "ood"} == {"gpqa_diamond", "connect4"}
    assert suites.connect4.n_samples == 5 and suites.connect4.n == 500 and suites.connect4.path is None


def test_a_model_is_scored_on_generated_positions(tmp_path, micro_model_dir):
    """The generation path: the suite's own prompt around each board, avg@N from the config, parts reported."""
    out = tmp_path / "out"
    evaluate(ROOT, "model=hf", f"model.path={micro_model_dir}", "model.dtype=float32", "eval=[connect4]",
             "eval.limit=2", "eval.suites.connect4.n=2", "eval.max_new_tokens=4", "eval.sampling.temperature=0.7",
             *QUIET, f"hydra.run.dir={out}")
    metrics = json.loads((out / "metrics.json").read_text())
    details = metrics["trained"]["details"]["connect4"]
    assert details["metric"] == "avg@5" and details["n_questions"] == 2 and details["group"] == "ood"
    assert set(details["parts"]) == {"mine", "theirs"}
    assert details["accuracy"] == pytest.approx((details["parts"]["mine"] + details["parts"]["theirs"]) / 2)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 10 and samples[0]["prompt"].startswith("You are player O")
    assert samples[0]["answer"] == {"mine": [], "theirs": []}  # position 1 is of the kind "neither has a win"
