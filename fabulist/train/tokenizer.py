"""Train or load the byte-level BPE tokenizer, and turn fable records into token streams.

    fabulist train --preset fable-5m --data train.parquet --vocab-size 4096 ...

Byte-level BPE with GPT-2's pre-tokenizer (so llama.cpp reads it as a `gpt2` tokenizer with the
`gpt-2` pre-tokenizer), trained with the `tokenizers` library on the training documents of
`fabulist.fable_format`. The special tokens are that module's: `<|endoftext|>` (id 0, end of text and
document separator), `<|prompt|>`, `<|story|>`, `<|pad|>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fabulist import fable_format as ff
from fabulist.errors import FabulistError


class TokenizerError(FabulistError):
    """A tokenizer that cannot be trained or used."""


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + len(ff.SPECIAL_TOKENS):
        raise TokenizerError(f"vocab size {vocab_size} is below the 256 bytes plus the special tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(ff.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save(tok, folder: str | Path, context: int) -> None:
    """Write tokenizer.json and the Hugging Face tokenizer files into `folder`."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=ff.BOS, eos_token=ff.EOS, pad_token=ff.PAD, model_max_length=context
    )
    hf.add_special_tokens({"additional_special_tokens": [ff.STORY]})
    hf.save_pretrained(str(folder))


def load(path: str | Path):
    """A `tokenizers.Tokenizer` from tokenizer.json (or a folder holding one), checked for our tokens."""
    from tokenizers import Tokenizer

    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for a missing or bad file
        raise TokenizerError(f"cannot load tokenizer {file}: {exc}") from None
    missing = [t for t in ff.SPECIAL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        raise TokenizerError(f"tokenizer {file} lacks the special tokens {missing}")
    return tok


def special_ids(tok) -> dict[str, int]:
    return {
        "eos": tok.token_to_id(ff.EOS),
        "bos": tok.token_to_id(ff.BOS),
        "story": tok.token_to_id(ff.STORY),
        "pad": tok.token_to_id(ff.PAD),
    }
