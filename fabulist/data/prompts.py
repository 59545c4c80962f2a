"""Combinatorial prompts: deterministic sampling without replacement from the six-element space.

    fabulist data prompts --count 100000 --seed 0 [--shard 0/4] -o prompts.jsonl

The space is the cartesian product of the six element lists (about 10^12 combinations), never
materialised. A combination has a mixed-radix index; a seeded Feistel permutation with cycle walking maps
sample position -> index, so the first N positions are N distinct combinations, and a larger count
extends a smaller one (same seed, same prefix).

Regions. A fixed ~2% of (character, moral) pairs, chosen by a hash of their ids, is reserved for
evaluation: training samples (`region="train"`) never contain them, evaluation prompts
(`region="eval"`) only contain them. Every character and every moral still occurs in training; only
those pairings are held out.

Shards. Shard i/n owns the indices congruent to i mod n within a region, so shards never overlap,
whatever their seeds, and together cover the region.

Variants. Each prompt is the full six-element scaffold, a partial instruction (the character and a few
others, the rest left to the teacher) or a story beginning to continue, drawn by configurable weights.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fabulist import elements as el
from fabulist.errors import FabulistError
from fabulist.records import VARIANTS, file_kind

EVAL_PAIR_MODULUS = 50  # one (character, moral) pair in 50 is held out for evaluation
DEFAULT_VARIANTS = {"full": 0.7, "partial": 0.15, "beginning": 0.15}
_MASK64 = (1 << 64) - 1

SYSTEM_PROMPT = (
    "You are a children's author. You write short moral fables for children aged 4 to 7 "
    "in simple, correct English."
)
_RULES = (
    "Write 150 to 250 words in the past tense, in plain prose with no title. "
    'End with a final line that starts with "Moral:" and states the moral in one sentence.'
)


class PromptError(FabulistError, ValueError):
    """An impossible prompt request: bad shard, count larger than the space, unknown element."""


def check_replaceable(out: str | Path) -> None:
    """Refuse to replace an existing file that is not a prompts file (a fables file, anything else)."""
    if not Path(out).is_file():
        return
    kind = file_kind(out)
    if kind not in ("prompts", "empty"):
        held = "holds fables" if kind == "fables" else "is not a prompts file"
        raise PromptError(f"{out} {held}; writing prompts would replace it (choose another -o, or --force)")


def prompt_hash(ids: Mapping[str, str]) -> str:
    """Stable 16-hex-digit hash of one element combination (ids in KINDS order)."""
    key = "|".join(ids[k] for k in el.KINDS)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def is_reserved(character_id: str, moral_id: str) -> bool:
    """True when this (character, moral) pair belongs to the evaluation region."""
    digest = hashlib.blake2b(f"eval|{character_id}|{moral_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % EVAL_PAIR_MODULUS == 0


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(part) for part in spec.split("/"))
    except ValueError:
        raise PromptError(f"bad shard {spec!r}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise PromptError(f"bad shard {spec!r}: need 0 <= i < n")
    return i, n


def parse_variants(spec: str) -> dict[str, float]:
    """'full=0.7,partial=0.2,beginning=0.1' -> normalised weights."""
    weights = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name not in VARIANTS:
            raise PromptError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise PromptError(f"bad weight {value!r} for variant {name}") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise PromptError(f"bad weight {value!r} for variant {name}")
    total = sum(weights.values())
    if total <= 0:
        raise PromptError(f"bad variants {spec!r}: weights must add up to more than 0")
    return {name: w / total for name, w in weights.items()}


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit mixing function."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class Permutation:
    """A keyed pseudo-random permutation of range(size): a 4-round Feistel network with cycle walking."""

    def __init__(self, size: int, key: str):
        self.size = size
        self.half = max(1, ((size - 1).bit_length() + 1) // 2)
        self.mask = (1 << self.half) - 1
        digest = hashlib.blake2b(key.encode(), digest_size=32).digest()
        self.keys = [int.from_bytes(digest[i : i + 8], "big") for i in range(0, 32, 8)]

    def _encrypt(self, x: int) -> int:
        left, right = x >> self.half, x & self.mask
        for k in self.keys:
            left, right = right, left ^ (_mix(right ^ k) & self.mask)
        return (left << self.half) | right

    def __getitem__(self, position: int) -> int:
        if not 0 <= position < self.size:
            raise IndexError(position)
        x = self._encrypt(position)
        while x >= self.size:  # cycle walking: the domain is < 4x size, so this ends fast
            x = self._encrypt(x)
        return x


@dataclass(frozen=True)
class Space:
    """The element combinations of one region (and optional fixed elements), as a mixed-radix index."""

    pairs: tuple[tuple[int, int], ...]  # allowed (character, moral) index pairs
    dims: tuple[tuple[int, ...], ...]  # allowed indices for trait, setting, conflict, resolution

    @classmethod
    def build(cls, region: str = "train", fixed: Mapping[str, str] | None = None) -> Space:
        if region not in ("train", "eval"):
            raise PromptError(f"unknown region {region!r}; choose train or eval")
        allowed = {k: range(len(el.load(k))) for k in el.KINDS}
        for kind, element_id in (fixed or {}).items():
            if kind not in el.KINDS:
                raise PromptError(f"unknown element kind {kind!r}; choose from {', '.join(el.KINDS)}")
            allowed[kind] = [el.index(kind)[el.lookup(kind, element_id).id]]
        chars, morals = el.load("character"), el.load("moral")
        want_reserved = region == "eval"
        pairs = tuple(
            (c, m)
            for c in allowed["character"]
            for m in allowed["moral"]
            if is_reserved(chars[c].id, morals[m].id) == want_reserved
        )
        dims = tuple(tuple(allowed[k]) for k in ("trait", "setting", "conflict", "resolution"))
        return cls(pairs, dims)

    @property
    def size(self) -> int:
        return len(self.pairs) * math.prod(len(d) for d in self.dims)

    def ids(self, index: int) -> dict[str, str]:
        """Element ids of the combination with this index."""
        picks = []
        for dim in reversed(self.dims):
            index, digit = divmod(index, len(dim))
            picks.append(dim[digit])
        t, s, k, r = reversed(picks)
        c, m = self.pairs[index]
        chosen = {"character": c, "trait": t, "setting": s, "conflict": k, "resolution": r, "moral": m}
        return {kind: el.load(kind)[i].id for kind, i in chosen.items()}


def instruction(ids: Mapping[str, str], shown: list[str], beginning: str | None) -> str:
    """The user message a teacher LLM reads for this prompt."""
    scaffold = "\n".join(f"{k.capitalize()}: {el.label(k, el.lookup(k, ids[k]))}" for k in shown)
    if beginning is not None:
        return (
            f"Continue this fable for young children. The whole fable must start with exactly these "
            f'words: "{beginning}"\nUse these elements:\n{scaffold}\n{_RULES}'
        )
    if len(shown) == len(el.KINDS):
        return f"Write a fable for young children using these elements:\n{scaffold}\n{_RULES}"
    return (
        f"Write a fable for young children with these elements, choosing the other details yourself:"
        f"\n{scaffold}\n{_RULES}"
    )


def cut_beginning(paragraph: str, rng: random.Random) -> str:
    """Cut an opening paragraph mid-way at a word boundary, leaving a story start to continue."""
    tokens = paragraph.split()
    lo = min(len(tokens) - 1, max(6, len(tokens) // 3))
    hi = max(lo, len(tokens) * 3 // 4)
    return " ".join(tokens[: rng.randint(lo, hi)]).rstrip(",;:")


def make_prompt(ids: Mapping[str, str], variant: str, rng: random.Random) -> dict:
    """The variant-specific fields of one prompt record."""
    kinds = list(el.KINDS)
    shown, beginning, opening_seed = kinds, None, None
    if variant == "partial":
        others = rng.sample(kinds[1:], rng.randint(1, 3))
        shown = [k for k in kinds if k == "character" or k in others]
    elif variant == "beginning":
        # Cut from procedural teacher v1's opening (frozen), so a prompt file is the same whichever teacher
        # version writes its fables; both versions continue that opening.
        from fabulist.data.teachers import procedural_v1

        opening_seed = rng.getrandbits(48)
        story = {k: el.lookup(k, ids[k]) for k in kinds}
        beginning = cut_beginning(procedural_v1.opening(story, opening_seed), rng)
    return {
        "variant": variant,
        "shown": shown,
        "prompt": instruction(ids, shown, beginning),
        "beginning": beginning,
        "opening_seed": opening_seed,
    }


def sample(
    count: int,
    seed: int = 0,
    shard: str = "0/1",
    region: str = "train",
    variants: Mapping[str, float] | None = None,
    fixed: Mapping[str, str] | None = None,
) -> Iterator[dict]:
    """Yield `count` prompt records: distinct combinations of the region's shard, in permuted order."""
    i, n = parse_shard(shard)
    space = Space.build(region, fixed)
    shard_size = max(0, (space.size - i + n - 1) // n)
    if count < 0:
        raise PromptError("count must be >= 0")
    if count > shard_size:
        raise PromptError(
            f"count {count:,} is larger than the {shard_size:,} combinations in region {region!r} "
            f"shard {shard}{' with the fixed elements' if fixed else ''}"
        )
    weights = dict(variants or DEFAULT_VARIANTS)
    names, probs = list(weights), list(weights.values())
    perm = Permutation(
        shard_size, f"fabulist-prompts|{seed}|{region}|{i}/{n}|{sorted((fixed or {}).items())}"
    )
    sampler = {"seed": seed, "shard": f"{i}/{n}", "region": region}
    for position in range(count):
        ids = space.ids(perm[position] * n + i)
        h = prompt_hash(ids)
        rng = random.Random(f"{seed}|{h}")
        variant = rng.choices(names, probs)[0]
        yield {
            "prompt_hash": h,
            "index": position,
            "elements": ids,
            **make_prompt(ids, variant, rng),
            "language": "en",
            "sampler": sampler,
        }
