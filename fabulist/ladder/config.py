"""A ladder configuration as data: sizes, two or more shapes per size, one token budget per size.

    fabulist ladder plan default            # the rungs, their parameter counts and steps; trains nothing

A config is a JSON file (or the name of a shipped one: `default`, `tiny`) with these keys (all but
`sizes` optional; keys starting with "_" are comments):

- vocab_size (4096), context (512), batch_size (8), seed (0), device ("auto": a GPU when there is one),
  compile (false): passed to `fabulist train` for every rung; all rungs share one tokenizer.
- lr: a peak learning rate for every rung, or a rule {"base": 3e-3, "hidden": 128, "max": 6e-3}:
  lr = min(max, base x hidden / the rung's hidden size) (the presets' own rates follow 1/width).
  A rung may give its own "lr".
- train_fables: "auto" (the first fables that hold the largest token budget plus 10%, so no rung
  repeats data), "all", or a number; valid_fables (1000): the first validation fables used.
- quant ("int4" or "int8"): the precision exported, measured for speed and scored for quality.
- memory_budget ("6GB") and fit_context (null: each model's own context): the upper bound's budget.
- threshold: "quality-bar" (`fabulist.eval.quality`'s TARGETS and MAX_REPETITION) or {metric: value}
  over moral_line, character, setting, moral_stated, one_name, no_glitch, introduced, quality_score
  (minimums) and repetition_4gram,
  valid_loss (maximums).
- eval: {"count": 100, "temperature": 0.8, "max_new_tokens": 400, "seed": 0}: the quality prompts.
- speed: {"threads": 1, "repeats": 3}: decode speed of the runtime on the exported artifact.
- curve_points (0) and curve_count (30): quality of that many intermediate checkpoints per rung (on
  curve_count prompts, through PyTorch) for the quality-vs-tokens plot; the loss curve is always there.
- judge: {"n": 1, "limit": 50, "temperature": 1.0}: completions per curated prompt, used only when a
  judge is given on the command line.
- param_tolerance (0.3): how far a rung's parameter count may be from its size's target.
- sizes: [{"size": "1M", "params": 1000000, "tokens": 500000, "rungs": [{"name": "1m-deep",
  "family": "deep-thin", "shape": {"hidden_size": 64, "num_hidden_layers": 14, ...}}, {"name": ...,
  "family": "wide-shallow", "preset": "fable-1m"}]}], in increasing order of params.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fabulist.errors import FabulistError
from fabulist.names import RULE, is_folder_name
from fabulist.thresholds import CHECKS
from fabulist.train import presets

FAMILIES = ("deep-thin", "wide-shallow")
QUANTS = ("int4", "int8")
MINIMA = (*CHECKS, "quality_score")
MAXIMA = ("repetition_4gram", "valid_loss")
BUILTIN = ("default", "tiny")
TOP_KEYS = {"name", "vocab_size", "context", "batch_size", "seed", "device", "compile", "lr", "train_fables",
            "valid_fables", "quant", "memory_budget", "fit_context", "threshold", "eval", "speed",
            "curve_points", "curve_count", "judge", "param_tolerance", "sizes"}  # fmt: skip


class LadderError(FabulistError):
    """A ladder that cannot run: a bad config, data that changed under an output folder, a failed rung."""


@dataclass(frozen=True)
class Rung:
    name: str
    family: str
    size: str
    target: int  # the size's parameter target
    tokens: int  # the size's token budget
    shape: presets.Preset  # custom or shipped; its context is the ladder's
    preset: str | None  # the shipped preset it came from, if any
    lr: float

    def parameters(self, vocab: int) -> int:
        return self.shape.parameters(vocab)

    def shape_dict(self) -> dict:
        return {k: getattr(self.shape, k) for k in presets.SHAPE_KEYS}


@dataclass(frozen=True)
class Eval:
    count: int = 100
    temperature: float = 0.8
    max_new_tokens: int = 400
    seed: int = 0


@dataclass(frozen=True)
class LadderConfig:
    name: str
    rungs: tuple[Rung, ...]
    vocab_size: int = 4096
    context: int = 512
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    train_fables: str | int = "auto"
    valid_fables: int = 1000
    quant: str = "int4"
    memory_budget: str = "6GB"
    fit_context: int | None = None
    threshold: dict = field(default_factory=dict)
    eval: Eval = Eval()
    speed_threads: int = 1
    speed_repeats: int = 3
    curve_points: int = 0
    curve_count: int = 30
    judge: dict = field(default_factory=lambda: {"n": 1, "limit": 50, "temperature": 1.0})
    raw: dict = field(default_factory=dict, compare=False)

    def steps(self, rung: Rung) -> int:
        """Optimizer steps that spend the rung's token budget (tokens per step: batch x context)."""
        return max(1, math.ceil(rung.tokens / (self.batch_size * self.context)))


def quality_bar() -> dict:
    from fabulist.eval import quality

    return {**quality.TARGETS, "repetition_4gram": quality.MAX_REPETITION}


def misses(metrics: dict, threshold: dict) -> list[str]:
    """The threshold's checks that `metrics` fails (empty: the rung meets the threshold). A metric that
    was not measured fails its check."""
    from fabulist.thresholds import misses as failed

    minima = {k: v for k, v in threshold.items() if k not in MAXIMA}
    return failed(metrics, minima, {k: v for k, v in threshold.items() if k in MAXIMA})


def load(spec: str | Path) -> LadderConfig:
    """A config from a path, or a shipped one by name (`default`, `tiny`)."""
    path = Path(spec)
    if not path.exists() and str(spec) in BUILTIN:
        text = (resources.files("fabulist.ladder") / "configs" / f"{spec}.json").read_text(encoding="utf-8")
        where = f"ladder config {spec}"
    elif not path.is_file():
        raise LadderError(f"ladder config {spec}: no such file (or give a shipped one: {', '.join(BUILTIN)})")
    else:
        where = f"ladder config {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LadderError(f"{where}: not UTF-8 text (a binary or corrupt file)") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LadderError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise LadderError(f"{where}: not valid JSON (nested too deeply)") from None
    return parse(raw, where, default_name=path.stem)


def parse(raw: dict, where: str = "ladder config", default_name: str = "ladder") -> LadderConfig:
    """Check a config's values and resolve its rungs; every problem is one LadderError naming the key."""
    if not isinstance(raw, dict):
        raise LadderError(f"{where}: expected a JSON object")
    unknown = sorted(k for k in raw if k not in TOP_KEYS and not k.startswith("_"))
    if unknown:
        raise LadderError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(TOP_KEYS))}")
    get = _Getter(raw, where)
    context = get.integer("context", 512, low=256)
    vocab = get.integer("vocab_size", 4096, low=256 + 4)
    quant = get.choice("quant", "int4", QUANTS)
    rungs = _rungs(
        raw.get("sizes"), where, context, vocab, raw.get("lr", 3e-3), get.number("param_tolerance", 0.3)
    )
    from fabulist.export import plan as pl

    try:
        pl.parse_bytes(str(raw.get("memory_budget", "6GB")))
    except pl.PlanError as exc:
        raise LadderError(f"{where}: memory_budget: {exc}") from None
    fit_context = raw.get("fit_context")
    if fit_context is not None and (not isinstance(fit_context, int) or fit_context < 1):
        raise LadderError(f"{where}: fit_context must be a positive whole number or null")
    return LadderConfig(
        name=str(raw.get("name", default_name)), rungs=rungs, vocab_size=vocab, context=context,
        batch_size=get.integer("batch_size", 8), seed=get.integer("seed", 0, low=0),
        device=get.choice("device", "auto", ("auto", "cpu", "cuda")), compile=bool(raw.get("compile", False)),
        train_fables=_fables(raw.get("train_fables", "auto"), where),
        valid_fables=get.integer("valid_fables", 1000), quant=quant,
        memory_budget=str(raw.get("memory_budget", "6GB")), fit_context=fit_context,
        threshold=_threshold(raw.get("threshold", "quality-bar"), where),
        eval=_eval(raw.get("eval", {}), where),
        speed_threads=_Getter(raw.get("speed", {}), f"{where}: speed").integer("threads", 1),
        speed_repeats=_Getter(raw.get("speed", {}), f"{where}: speed").integer("repeats", 3),
        curve_points=get.integer("curve_points", 0, low=0), curve_count=get.integer("curve_count", 30),
        judge=_judge(raw.get("judge", {}), where), raw=raw,
    )  # fmt: skip


class _Getter:
    """Typed reads of one JSON object with errors that name the key."""

    def __init__(self, obj, where: str):
        if not isinstance(obj, dict):
            raise LadderError(f"{where}: expected a JSON object")
        self.obj, self.where = obj, where

    def integer(self, key: str, default: int, low: int = 1) -> int:
        value = self.obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise LadderError(f"{self.where}: {key} must be a whole number >= {low} (got {value!r})")
        return value

    def number(self, key: str, default: float, low: float = 0.0) -> float:
        value = self.obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= low:
            raise LadderError(f"{self.where}: {key} must be a number > {low:g} (got {value!r})")
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.obj.get(key, default)
        if value not in choices:
            raise LadderError(f"{self.where}: {key} {value!r} is not one of {', '.join(choices)}")
        return value


def _fables(value, where: str) -> str | int:
    if value in ("auto", "all") or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise LadderError(f'{where}: train_fables must be "auto", "all" or a positive number (got {value!r})')


def _threshold(value, where: str) -> dict:
    if value == "quality-bar":
        return quality_bar()
    if not isinstance(value, dict) or not value:
        raise LadderError(f'{where}: threshold must be "quality-bar" or a non-empty {{metric: value}} object')
    for key, limit in value.items():
        if key not in (*MINIMA, *MAXIMA):
            raise LadderError(
                f"{where}: threshold: unknown metric {key!r}; use {', '.join((*MINIMA, *MAXIMA))}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
            raise LadderError(f"{where}: threshold: {key} must be a number >= 0 (got {limit!r})")
        if key != "valid_loss" and limit > 1:
            raise LadderError(f"{where}: threshold: {key} is a rate; give it between 0 and 1 (got {limit})")
    return {k: float(v) for k, v in value.items()}


def _eval(value, where: str) -> Eval:
    get = _Getter(value, f"{where}: eval")
    unknown = sorted(set(value) - {"count", "temperature", "max_new_tokens", "seed"})
    if unknown:
        raise LadderError(f"{where}: eval: unknown key {unknown[0]!r}")
    return Eval(get.integer("count", 100), get.number("temperature", 0.8, low=-1e-9),
                get.integer("max_new_tokens", 400), get.integer("seed", 0, low=0))  # fmt: skip


def _judge(value, where: str) -> dict:
    get = _Getter(value, f"{where}: judge")
    return {"n": get.integer("n", 1), "limit": get.integer("limit", 50),
            "temperature": get.number("temperature", 1.0, low=-1e-9)}  # fmt: skip


def _lr(rule, hidden: int, where: str) -> float:
    if isinstance(rule, int | float) and not isinstance(rule, bool) and rule > 0:
        return float(rule)
    if isinstance(rule, dict) and set(rule) <= {"base", "hidden", "max"} and {"base", "hidden"} <= set(rule):
        get = _Getter(rule, f"{where}: lr")
        lr = get.number("base", 0) * get.number("hidden", 0) / hidden
        return min(lr, get.number("max", math.inf))
    raise LadderError(f'{where}: lr must be a positive number or {{"base", "hidden", "max"}} (got {rule!r})')


def _rungs(sizes, where: str, context: int, vocab: int, lr_rule, tolerance: float) -> tuple[Rung, ...]:
    if not isinstance(sizes, list) or not sizes:
        raise LadderError(f"{where}: sizes must be a non-empty list of {{size, params, tokens, rungs}}")
    rungs, names, last = [], set(), 0
    for i, size in enumerate(sizes):
        at = f"{where}: sizes[{i}]"
        get = _Getter(size, at)
        label = str(size.get("size", f"size {i}"))
        target, tokens = get.integer("params", 0), get.integer("tokens", 0)
        if target <= last:
            raise LadderError(f"{at} ({label}): sizes must be listed in increasing order of params")
        last = target
        entries = size.get("rungs")
        if not isinstance(entries, list) or not entries:
            raise LadderError(f"{at} ({label}): rungs must be a non-empty list")
        for j, entry in enumerate(entries):
            rung = _rung(entry, f"{at}.rungs[{j}]", label, target, tokens, context, lr_rule)
            if rung.name in names:
                raise LadderError(f"{at}.rungs[{j}]: the rung name {rung.name!r} is used twice")
            names.add(rung.name)
            actual = rung.parameters(vocab)
            if abs(actual - target) > tolerance * target:
                raise LadderError(
                    f"{at}.rungs[{j}] ({rung.name}): {actual:,} parameters at vocabulary {vocab}, more than "
                    f"{tolerance:.0%} from the size's {target:,}; change its shape or param_tolerance"
                )
            rungs.append(rung)
    return tuple(rungs)


def _rung(entry, at: str, size: str, target: int, tokens: int, context: int, lr_rule) -> Rung:
    if not isinstance(entry, dict):
        raise LadderError(f"{at}: expected a JSON object with name, family and shape or preset")
    unknown = sorted(set(entry) - {"name", "family", "shape", "preset", "lr"})
    if unknown:
        raise LadderError(f"{at}: unknown key {unknown[0]!r}; a rung has name, family, shape or preset, lr")
    name = entry.get("name")
    if not is_folder_name(name):
        raise LadderError(f"{at}: name must be a non-empty folder name: {RULE} (got {name!r})")
    if entry.get("family") not in FAMILIES:
        raise LadderError(
            f"{at} ({name}): family {entry.get('family')!r} is not one of {', '.join(FAMILIES)}"
        )
    if ("shape" in entry) == ("preset" in entry):
        raise LadderError(f"{at} ({name}): give exactly one of shape or preset")
    try:
        if "preset" in entry:
            base = presets.get(entry["preset"])
            shape = presets.custom(name, {k: getattr(base, k) for k in presets.SHAPE_KEYS}, context)
        else:
            if not isinstance(entry["shape"], dict):
                raise LadderError(f"{at} ({name}): shape must be an object")
            shape = presets.custom(name, {**entry["shape"], "context": context})
    except presets.PresetError as exc:
        raise LadderError(f"{at}: {exc}") from None
    lr = _lr(entry.get("lr", lr_rule), shape.hidden_size, f"{at} ({name})")
    return Rung(name, entry["family"], size, target, tokens, shape, entry.get("preset"), lr)
