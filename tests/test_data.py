"""Pair files -> batches: validation errors name file:line:field; prompts are masked; truncation is sane."""

import json

import pytest

from spot.chat import ChatFormat
from spot.data import DataError, PairDataModule, encode, read_examples


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


GOOD = {"prompt": "Ann has 1 pens. How many pens?", "chosen": "#### 1", "rejected": "#### 2"}


@pytest.mark.parametrize("bad, message", [
    ({"prompt": "p", "chosen": "c"}, "missing field 'rejected'"),
    ({"prompt": "p", "chosen": "", "rejected": "r"}, "field 'chosen' is empty"),
    ({"prompt": "p", "chosen": 3, "rejected": "r"}, "field 'chosen' must be a string, got int"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_malformed_row_names_file_line_and_field(tmp_path, bad, message):
    path = write(tmp_path / "pairs.jsonl", [GOOD, GOOD, bad])
    with pytest.raises(DataError) as e:
        read_examples(path, pairs=True)
    assert str(e.value).startswith(f"{path}:3: ") and message in str(e.value)


def test_single_completion_rows_accept_completion_or_chosen(tmp_path):
    path = write(tmp_path / "sft.jsonl", [{"prompt": "p", "completion": "a"}, {"prompt": "q", "chosen": "b"}])
    assert [r["chosen"] for r in read_examples(path, pairs=False)] == ["a", "b"]


def test_missing_file_names_the_config_key_and_the_command(tmp_path, micro_model_dir):
    from spot.models import load_tokenizer

    dm = PairDataModule(str(tmp_path / "nope.jsonl"), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True,
                        make_command="python rectify.py")
    with pytest.raises(DataError, match=r"data.path=.*nope.jsonl does not exist; create it with: python rectify.py"):
        dm.setup()


def test_batches_put_chosen_then_rejected_and_mask_the_prompt(toy_files, micro_model_dir):
    from spot.models import load_tokenizer

    tok = load_tokenizer(micro_model_dir)
    dm = PairDataModule(str(toy_files["pairs"]), ChatFormat(tok), pairs=True, batch_size=4)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 8
    for row in range(8):
        ids, mask = batch["input_ids"][row], batch["loss_mask"][row]
        scored = tok.decode(ids[mask])
        assert scored.endswith("<eos>") and "####" in scored and "Q:" not in scored
        assert tok.decode(ids[: int(mask.nonzero()[0])]).startswith("Q: ")
    first = [tok.decode(r[m]) for r, m in zip(batch["input_ids"][:4], batch["loss_mask"][:4])]
    second = [tok.decode(r[m]) for r, m in zip(batch["input_ids"][4:], batch["loss_mask"][4:])]
    assert first != second  # rejected answers differ from chosen ones


def test_truncation_keeps_prompt_end_and_completion_start(micro_model_dir):
    from spot.models import load_tokenizer

    tok = load_tokenizer(micro_model_dir)
    ids, n_prompt = encode(ChatFormat(tok), "x" * 50, "abcdef", max_length=20, max_prompt_length=16)
    assert n_prompt == 16 and len(ids) == 20
    assert tok.decode(ids[:n_prompt]).endswith("\nA: ")
    assert tok.decode(ids[n_prompt:]) == "abcd"


def test_epoch_order_depends_on_seed_and_epoch_only(toy_files, micro_model_dir):
    from spot.models import load_tokenizer

    dm = PairDataModule(str(toy_files["pairs"]), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True, batch_size=4)
    dm.setup()
    a, b = dm.train_dataloader().sampler, dm.train_dataloader().sampler
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(0)
    assert list(a) != list(b)


def rank_batches(dm, world: int, epoch: int) -> list[list[list[int]]]:
    """[rank][step] -> the examples of that rank's batch, through the real DataLoader and collate."""
    from types import SimpleNamespace

    out = []
    for rank in range(world):
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # what Lightning calls before every epoch
        out.append([b["index"].tolist() for b in loader])
        assert len(loader) == len(out[-1])  # Lightning's progress and the LR schedule count on __len__
    return out


@pytest.mark.parametrize("n, group_by_length", [(32, False), (29, False), (261, True), (25, False)])
def test_two_ranks_share_the_global_batches_of_one_process(tmp_path, micro_model_dir, n, group_by_length):
    """Rank r takes every 2nd example of each global batch of 2 x 4: step k of the two ranks is step k of one
    process with batches of 8, each example once an epoch. 29 = 3 x 8 + 5: the last shards are 3 and 2;
    25 = 3 x 8 + 1: one rank would have no last batch, so that example is skipped that epoch. By length: 261 rows
    fill more than one window of 32 global batches, which must be the one process's windows."""
    from conftest import write_toy_files

    from spot.models import load_tokenizer

    path = write_toy_files(tmp_path, n=n)["pairs"]
    chat = ChatFormat(load_tokenizer(micro_model_dir))
    one = PairDataModule(str(path), chat, pairs=True, batch_size=8, group_by_length=group_by_length, layout="padded")
    two = PairDataModule(str(path), chat, pairs=True, batch_size=4, group_by_length=group_by_length, layout="padded")
    one.setup()
    two.setup()
    orders = []
    for epoch in (0, 1):
        (single,), (r0, r1) = rank_batches(one, 1, epoch), rank_batches(two, 2, epoch)
        assert len(r0) == len(r1)  # else one rank waits forever at the gradient all-reduce
        assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(s) for s in single][: len(r0)]
        seen = [i for batch in r0 + r1 for i in batch]
        assert len(seen) == len(set(seen)) == (n - 1 if n == 25 else n)
        orders.append(seen)
    assert orders[0] != orders[1]
