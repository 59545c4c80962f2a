"""A tokenizer.json as llama.cpp's vocabulary: which of its tokenizers reproduces it, and the GGUF keys.

    fabulist export path/to/model --format gguf      # the tokenizer is checked before anything is written

llama.cpp does not run tokenizer.json; it re-implements a few tokenizers and picks one by name:
- byte-level BPE (GPT-2, SmolLM, Qwen, Llama 3, Fabulist's own) is `gpt2`, whose split of text into
  words before BPE is chosen by `tokenizer.ggml.pre`. Only pre-tokenizers that match one of llama.cpp's
  exactly are accepted (`PRE_TOKENIZERS`); any other would load and silently tokenize differently;
- SentencePiece-style BPE with byte fallback (Llama 2, Gemma) is `llama`, which merges by score, so each
  token's score is minus the rank of the merge that makes it, and <0xXX> tokens are typed BYTE.
Special (added) tokens become CONTROL tokens; the vocabulary is padded with [PADi] up to the
embedding's rows, as llama.cpp's own converter does (Qwen pads 151,665 tokens to 151,936 rows).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fabulist.export.errors import ExportError

_GPT2_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_QWEN2_WORDS = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")  # fmt: skip
_LLAMA3_WORDS = _QWEN2_WORDS.replace(r"\p{N}|", r"\p{N}{1,3}|")
PRE_TOKENIZERS = {  # a canonical form of tokenizer.json's pre_tokenizer -> llama.cpp's tokenizer.ggml.pre
    ("bytelevel",): "gpt-2",
    ("digits", "bytelevel"): "smollm",
    (f"split:{_QWEN2_WORDS}", "bytelevel-noregex"): "qwen2",
    (f"split:{_LLAMA3_WORDS}", "bytelevel-noregex"): "llama-bpe",
}


def _canonical(pre: dict | None) -> tuple[str, ...]:
    """The pre-tokenizer as a tuple of steps; an unknown step keeps its type, so it matches nothing."""
    steps = pre.get("pretokenizers", []) if pre and pre["type"] == "Sequence" else [pre] if pre else []
    out = []
    for s in steps:
        if s["type"] == "ByteLevel" and not s.get("add_prefix_space"):
            out.append("bytelevel" if s.get("use_regex", True) else "bytelevel-noregex")
        elif s["type"] == "Digits" and s.get("individual_digits"):
            out.append("digits")
        elif s["type"] == "Split" and s.get("behavior") == "Isolated" and not s.get("invert"):
            out.append(f"split:{s['pattern'].get('Regex')}")
        else:
            out.append(json.dumps(s, sort_keys=True))
    return tuple(out)


def _has_byte_level(tj: dict) -> bool:
    return '"ByteLevel"' in json.dumps([tj.get("pre_tokenizer"), tj.get("decoder")])


def tokenizer_kind(tj: dict) -> tuple[str, str | None, bool]:
    """(tokenizer.ggml.model, tokenizer.ggml.pre, add_space_prefix) for a tokenizer.json, or an
    ExportError saying why llama.cpp could not reproduce it."""
    model = tj.get("model") if isinstance(tj, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        kind = model.get("type") if isinstance(model, dict) else "malformed"
        raise ExportError(f"tokenizer.json is a {kind} tokenizer: only BPE is written to GGUF")
    if _has_byte_level(tj):
        if (tj.get("normalizer") or {"type": "NFC"})["type"] != "NFC":
            raise ExportError("tokenizer.json normalizes text before byte-level BPE; llama.cpp would not")
        pre = PRE_TOKENIZERS.get(_canonical(tj.get("pre_tokenizer")))
        if pre is None:
            raise ExportError(
                "the BPE pre-tokenizer in tokenizer.json is not one llama.cpp knows "
                f"({', '.join(PRE_TOKENIZERS.values())}): a GGUF would split text differently"
            )
        return "gpt2", pre, False
    if not model.get("byte_fallback"):
        raise ExportError("tokenizer.json is neither byte-level BPE nor BPE with byte fallback")
    return "llama", None, _space_prefix(tj)


def _space_prefix(tj: dict) -> bool:
    """Whether a SentencePiece-style tokenizer puts ▁ before the text (Llama 2 does, Gemma does not);
    spaces must become ▁ (a Replace normalizer or a Metaspace pre-tokenizer) as llama.cpp's do. Gemma's
    Split on " " after that normalizer is a no-op (no spaces are left), as transformers' converter has it."""
    norm, pre = tj.get("normalizer") or {}, tj.get("pre_tokenizer") or {}
    steps = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm] if norm else []
    kinds = [s["type"] for s in steps]
    replaces = any(s["type"] == "Replace" and s.get("content") == "\u2581" for s in steps)
    no_op = not pre or (pre.get("type") == "Split" and pre.get("pattern") == {"String": " "})
    if replaces and no_op and set(kinds) <= {"Replace", "Prepend"}:
        return "Prepend" in kinds
    if not norm and pre.get("type") == "Metaspace" and not pre.get("split", True):
        return pre.get("prepend_scheme", "always") != "never"
    raise ExportError("tokenizer.json's SentencePiece-style normalizer/pre-tokenizer is not llama.cpp's")


def _vocab(tj: dict, rows: int, folder: Path) -> tuple[list[str], set[int], set[int]]:
    """(tokens in id order padded to rows, ids of special tokens, ids of other added tokens)."""
    vocab = dict(tj["model"]["vocab"])
    for t in tj.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise ExportError(f"{folder}/tokenizer.json has gaps in its token ids")
    if len(tokens) > rows:
        raise ExportError(f"{folder}/tokenizer.json has {len(tokens)} tokens, over vocab_size {rows}")
    tokens += [f"[PAD{i}]" for i in range(len(tokens), rows)]
    added = tj.get("added_tokens", [])
    special = {t["id"] for t in added if t.get("special")}
    return tokens, special, {t["id"] for t in added} - special


def _scores(tokens: list[str], merges: list[str]) -> list[float]:
    """SentencePiece scores that make llama.cpp's highest-score-first merging follow the BPE merge ranks."""
    rank = {}
    for r, m in enumerate(merges):
        rank.setdefault(m.replace(" ", "", 1), r)
    return [-float(rank.get(t, len(merges))) for t in tokens]


def add_vocab(writer, model_dir: Path, config: dict) -> None:
    """The tokenizer.* keys of a GGUF for model_dir's tokenizer.json (and tokenizer_config.json)."""
    import gguf

    tj = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    kind, pre, space_prefix = tokenizer_kind(tj)
    tokens, special, user = _vocab(tj, config["vocab_size"], model_dir)
    n_real = len(tj["model"]["vocab"]) + len(tj.get("added_tokens", []))
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"].get("merges", [])]
    unk = tj["model"].get("unk_token")
    T = gguf.TokenType

    def kind_of(i: int, t: str) -> int:
        if i in special:
            return T.CONTROL
        if i in user:
            return T.USER_DEFINED
        if i >= n_real:
            return T.UNUSED
        if kind == "llama" and re.fullmatch(r"<0x[0-9A-F]{2}>", t):
            return T.BYTE
        return T.UNKNOWN if t == unk else T.NORMAL

    writer.add_tokenizer_model(kind)
    writer.add_token_list(tokens)
    writer.add_token_types([kind_of(i, t) for i, t in enumerate(tokens)])
    if kind == "gpt2":
        writer.add_tokenizer_pre(pre)
        writer.add_token_merges(merges)
    else:
        writer.add_tokenizer_pre("default")
        writer.add_token_scores(_scores(tokens, merges))
        writer.add_add_space_prefix(space_prefix)
        if unk is not None and unk in tokens:
            writer.add_unk_token_id(tokens.index(unk))
    _add_special_ids(writer, model_dir, config)


def _add_special_ids(writer, model_dir: Path, config: dict) -> None:
    """bos/eos/pad from config.json (the first of a list of eos ids); add_bos_token and the chat template
    from tokenizer_config.json, so llama.cpp prompts the model as transformers does."""
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id)):  # fmt: skip
        value = config.get(key)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, int):
            add(value)
    try:
        tc = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tc = {}
    writer.add_add_bos_token(bool(tc.get("add_bos_token", False)))
    if isinstance(tc.get("chat_template"), str):
        writer.add_chat_template(tc["chat_template"])
