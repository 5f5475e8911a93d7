"""Connect4 positions for the paper's OOD suite: made from the game's rules, written in the authors' jsonl shape.

    python -m spot.evaluate.connect4 --n 500 --seed 0 data/benchmarks/connect4.jsonl

A position is reached by random legal play from the empty board (X moves first) until it is O's turn in the
middle of the game, with nobody having won yet. Its answer is computed exactly: the cells where O's piece
would land and make four in a row (O's immediate wins), and the same for X (the wins O must block). A move is
named by its landing cell (row, column), row 0 the lowest, because that is what the prompt lists as valid moves.

Each line is {"state": <board text>, "answer": [[[r, c], ...], [[r, c], ...]]} (O's wins, then X's): the shape
of the authors' file, so their 500 positions are read by the same code (eval.suites.connect4.path=<file>).
Positions are drawn in turn from the four answer kinds (both lists empty, only O's, only X's, both), so "None"
is not the right answer to most of them; the same seed gives the same file.
"""

from __future__ import annotations

import argparse
import random

from spot.errors import DataError

ROWS, COLS = 6, 7
EMPTY, ME, THEM = "_", "O", "X"
DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # along a row, up a column, the two diagonals
# Moves played before the position: odd (X began, so it is O's turn), past the opening, well before a full board.
MIN_MOVES, MAX_MOVES = 9, 27
MAX_TRIES = 20_000  # random games per position before giving up on its answer kind (a few dozen are typical)

Board = list[list[str]]  # board[r][c], r = 0 the lowest row
Cell = tuple[int, int]


def empty_board() -> Board:
    return [[EMPTY] * COLS for _ in range(ROWS)]


def landing_row(board: Board, col: int) -> int | None:
    """The row a piece dropped into `col` comes to rest in; None when the column is full."""
    return next((r for r in range(ROWS) if board[r][col] == EMPTY), None)


def valid_moves(board: Board) -> list[Cell]:
    return [(r, c) for c in range(COLS) if (r := landing_row(board, c)) is not None]


def wins_at(board: Board, cell: Cell, piece: str) -> bool:
    """Would `piece` at `cell` complete four in a row? Only lines through that cell can be new."""
    r0, c0 = cell
    for dr, dc in DIRECTIONS:
        run = 1
        for sign in (1, -1):
            r, c = r0 + sign * dr, c0 + sign * dc
            while 0 <= r < ROWS and 0 <= c < COLS and board[r][c] == piece:
                run += 1
                r, c = r + sign * dr, c + sign * dc
        if run >= 4:
            return True
    return False


def winning_moves(board: Board, piece: str) -> list[Cell]:
    """The valid moves with which `piece` wins at once, in column order."""
    return [cell for cell in valid_moves(board) if wins_at(board, cell, piece)]


def board_text(board: Board) -> str:
    """The position as the prompt shows it: one line per row, top row first, every cell as (r,c):X|O|_, then
    the valid moves and whose turn it is."""
    lines = [f"You are player {ME}; player {THEM} moved first, and it is your turn.",
             f"Board (row 0 is the bottom row, column 0 the leftmost; {EMPTY} is an empty cell):"]
    for r in reversed(range(ROWS)):
        lines.append("|".join(f"({r},{c}):{board[r][c]}" for c in range(COLS)))
    lines.append("Valid moves: " + ", ".join(f"({r},{c})" for r, c in valid_moves(board)))
    return "\n".join(lines)


def random_position(rng: random.Random) -> Board | None:
    """Random legal play to O's turn after an odd number of moves in [MIN_MOVES, MAX_MOVES]; None when someone
    won on the way (that game is not a position to ask about)."""
    board, n_moves = empty_board(), rng.randrange(MIN_MOVES, MAX_MOVES + 1, 2)
    for k in range(n_moves):
        piece = THEM if k % 2 == 0 else ME
        r, c = rng.choice(valid_moves(board))
        if wins_at(board, (r, c), piece):
            return None
        board[r][c] = piece
    return board


def positions(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct positions in the authors' shape, the four answer kinds in turn (see the module docstring)."""
    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    rng = random.Random(f"spot-connect4/{seed}")
    rows, seen = [], set()
    for i in range(n):
        want_mine, want_theirs = bool(i & 1), bool(i & 2)
        for _ in range(MAX_TRIES):
            board = random_position(rng)
            if board is None:
                continue
            mine, theirs = winning_moves(board, ME), winning_moves(board, THEM)
            state = board_text(board)
            if bool(mine) == want_mine and bool(theirs) == want_theirs and state not in seen:
                seen.add(state)
                rows.append({"state": state, "answer": [[list(x) for x in mine], [list(x) for x in theirs]]})
                break
        else:  # not expected with these move counts; a message rather than a silent shortfall
            raise RuntimeError(f"no new position with answer kind {i % 4} in {MAX_TRIES} random games")
    return rows


def main(argv: list[str] | None = None) -> None:
    from spot.errors import UserError, exit_with
    from spot.rows import write_jsonl

    ap = argparse.ArgumentParser(prog="python -m spot.evaluate.connect4", description=__doc__.split("\n")[0])
    ap.add_argument("out", help="the jsonl to write (replaced atomically)")
    ap.add_argument("--n", type=int, default=500, help="positions (default 500, the paper's count)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        rows = positions(args.n, args.seed)
        write_jsonl(args.out, rows)
    except UserError as e:
        exit_with(e)
    print(f"wrote {len(rows)} positions to {args.out}")


if __name__ == "__main__":
    main()
