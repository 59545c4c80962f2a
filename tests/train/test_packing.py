"""Training rows: whole fables per row (never cut from their header), padding and headers out of the loss,
validation per story token."""

import numpy as np
import pytest

from fabulist.train import data as td
from fabulist.train import tokenizer as tk
from fabulist.train import trainer

BOS, STORY, EOS, PAD = 1, 2, 0, 3


def doc(n_header: int, n_story: int, start: int = 10) -> list[int]:
    """<|prompt|> header... <|story|> story... <|endoftext|>: n_header + n_story + 3 tokens."""
    return [BOS, *range(start, start + n_header), STORY, *range(50, 50 + n_story), EOS]


def stream(docs: list[list[int]]):
    tokens = np.array([t for d in docs for t in d], dtype=np.uint16)
    offsets = np.cumsum([0, *map(len, docs)])
    return tokens, offsets, td.header_mask(tokens, BOS, STORY)


def test_header_mask_marks_prompt_through_story_marker():
    tokens, _, header = stream([doc(2, 3), doc(1, 1)])
    assert tokens.tolist() == [1, 10, 11, 2, 50, 51, 52, 0, 1, 10, 2, 50, 0]
    assert header.astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0]


def test_best_fit_packing_keeps_documents_whole():
    # lengths 6, 3, 5, 2, 9 and 12 (longer than a row of 10: two pieces, 10 and 3 tokens)
    docs = [doc(1, 2), doc(0, 0), doc(1, 1), [BOS, EOS], doc(2, 4), doc(4, 5)]
    assert [len(d) for d in docs] == [6, 3, 5, 2, 9, 12]
    tokens, offsets, header = stream(docs)
    rows = td.Rows(tokens, offsets, header, context=9, seed=0, pad=PAD)
    starts = offsets.tolist()
    # row 0: doc 0 (room 4) + the longest that fits, doc 1; row 1: doc 2 (room 5) + the 3-token last piece
    # of doc 5 + doc 3; row 2: doc 4 alone; row 3: doc 5's first piece
    assert rows.spans == [
        [(starts[0], starts[1]), (starts[1], starts[2])],
        [(starts[2], starts[3]), (starts[5] + 9, starts[6]), (starts[3], starts[4])],
        [(starts[4], starts[5])],
        [(starts[5], starts[5] + 10)],
    ]
    assert rows.split == 1 and rows.count == 4
    assert rows.real_tokens == sum(map(len, docs)) + 1  # doc 5's pieces share one token (stride 9)


def test_targets_leave_out_padding_and_headers():
    tokens, offsets, header = stream([doc(2, 3), doc(1, 1)])
    story = td.Rows(tokens, offsets, header, context=9, seed=0, pad=PAD, window=0)
    x, y = story.batch([0, 1])
    I = td.IGNORE  # noqa: E741
    assert x.tolist() == [[1, 10, 11, 2, 50, 51, 52], [1, 10, 2, 50, EOS, PAD, PAD]]
    assert y.tolist() == [[I, I, I, 50, 51, 52, 0], [I, I, 50, 0, I, I, I]]
    every = td.Rows(tokens, offsets, header, context=9, seed=0, pad=PAD, window=0, story_loss=False)
    x2, y2 = every.batch([0, 1])
    assert (x2 == x).all() and y2.tolist() == [[10, 11, 2, 50, 51, 52, 0], [10, 2, 50, 0, I, I, I]]


def test_stream_packing_is_the_old_fixed_blocks():
    tokens, offsets, header = stream([doc(2, 3), doc(1, 1), doc(3, 4)])
    rows = td.Rows(tokens, offsets, header, context=4, seed=0, pad=PAD, packing="stream", story_loss=False)
    assert rows.count == (len(tokens) - 1) // 4
    x, y = rows.batch([1])
    assert x[0].tolist() == tokens[4:8].tolist() and y[0].tolist() == tokens[5:9].tolist()


def test_order_is_a_seeded_permutation_and_take_resumes(fables):
    tokens, offsets, header = stream([doc(1, i % 5) for i in range(30)])
    rows = td.Rows(tokens, offsets, header, context=20, seed=3, pad=PAD)
    first, pos = rows.take((0, 0), 4)
    again, _ = td.Rows(tokens, offsets, header, context=20, seed=3, pad=PAD).take((0, 0), 4)
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert sorted(rows.order(0).tolist()) == list(range(rows.count)) and pos == (0, 4)


def test_real_fables_are_never_cut_from_their_header(fables):
    train_path, _ = fables
    docs = td.documents(td.read_records(train_path))
    tok = tk.train_tokenizer(docs, 2048)
    rows = trainer.rows_of(tok, docs, context=512, seed=0)
    special = tk.special_ids(tok)
    assert rows.split == 0 and rows.count <= len(docs)  # every fable fits a row
    _x, _y = rows.batch(range(rows.count))
    whole = 0
    for r in range(rows.count):
        toks = np.concatenate([rows.tokens[a:b] for a, b in rows.spans[r]])
        assert toks[0] == special["bos"] and toks[-1] == special["eos"]  # starts with a header, ends a fable
        whole += int((toks == special["eos"]).sum())
    assert whole == len(docs)
    fill = rows.real_tokens / (rows.count * 513)
    assert 0.6 < fill <= 1.0, fill


@pytest.mark.slow
def test_validation_loss_is_the_mean_nll_per_story_token(fables, tmp_path):
    import torch
    import torch.nn.functional as F

    from fabulist.train.presets import get

    train_path, valid_path = fables
    docs = td.documents(td.read_records(valid_path))[:6]
    tok = tk.train_tokenizer(td.documents(td.read_records(train_path)), 2048)
    rows = trainer.rows_of(tok, docs, context=512, seed=0, window=0, truncate=True)
    model = trainer.build_model(get("fable-1m"), tok, seed=0).eval()
    cfg = trainer.TrainConfig(eval_batches=3)
    got = trainer.evaluate(model, rows, cfg, micro=2, device=torch.device("cpu"), autocast=False)
    story_id = tok.token_to_id("<|story|>")
    nll, count = 0.0, 0
    for text in docs:  # by hand: each fable alone, the targets after <|story|>
        ids = tok.encode(text, add_special_tokens=False).ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
        per = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
        first = ids.index(story_id)  # the target at position first + 1 is the story's first token
        nll += per[first:].sum().item()
        count += len(ids) - 1 - first
    assert got == pytest.approx(nll / count, rel=1e-5)


def test_batches_group_rows_of_similar_length():
    rng = np.random.default_rng(0)
    docs = [doc(2, int(n)) for n in rng.integers(5, 60, size=512)]
    tokens, offsets, header = stream(docs)
    plain = td.Rows(tokens, offsets, header, context=80, seed=1, pad=PAD, window=0)
    grouped = td.Rows(tokens, offsets, header, context=80, seed=1, pad=PAD, window=0, group=8)
    assert sorted(grouped.order(0).tolist()) == list(range(grouped.count))  # still every row once
    assert (grouped.order(0) == grouped.order(0)).all() and (grouped.order(1) != grouped.order(0)).any()

    def padding(rows):
        widths = [rows.lengths[rows.order(0)[i : i + 8]].max() for i in range(0, rows.count, 8)]
        return 1 - rows.real_tokens / (8 * sum(widths))

    assert padding(grouped) < 0.05 < 0.2 < padding(plain)


def test_token_budget_sets_the_steps():
    tokens, offsets, header = stream([doc(2, 7)] * 40)  # rows of 12 tokens: 11 inputs each
    rows = td.Rows(tokens, offsets, header, context=13, seed=0, pad=PAD, window=0)
    assert rows.tokens_per_row == 11
    cfg = trainer.resolve_schedule(trainer.TrainConfig(batch_size=4, max_tokens=440, lr=1e-3), rows)
    assert cfg.max_steps == 10  # 440 tokens / (4 rows x 11)
