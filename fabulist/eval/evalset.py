"""The curated evaluation set: 50 prompts written for Fabulist, shipped as data (`data/prompts.json`).

    fabulist eval run --model runs/f5m --out runs/eval/f5m-int4     # generates for every prompt here

Each prompt names six element ids whose (character, moral) pair lies in the sampler's reserved evaluation
region (`fabulist.data.prompts.is_reserved`), so no training prompt can equal one; several pair elements
the lists rarely put together (a penguin in the desert, a robot hero). `shown` lists the elements the model
sees (all six by default); a prompt with a `beginning` is a story start to continue and, as in training,
shows no elements. The model prompt comes from `fabulist.fable_format`, the one training format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fabulist import elements as el
from fabulist import fable_format as ff
from fabulist.data import prompts as pr
from fabulist.errors import FabulistError


class EvalSetError(FabulistError, ValueError):
    """The evaluation prompt file is malformed or leaves the evaluation region."""


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    elements: dict[str, str]
    shown: tuple[str, ...] = el.KINDS
    beginning: str | None = None
    note: str = ""

    @property
    def model_prompt(self) -> str:
        """What the model is given: the training format up to <|story|>, plus any beginning."""
        if self.beginning is not None:
            return ff.prompt({}, self.beginning)
        return ff.prompt(ff.labels_for(self.elements, self.shown))

    def story(self, completion: str) -> str:
        """The whole fable a completion makes: the given beginning (if any) and what the model wrote."""
        return (self.beginning or "") + completion

    @property
    def task(self) -> str:
        """What the author was asked, in words, for the judge."""
        if self.beginning is not None:
            return f'Continue a fable for young children that begins: "{self.beginning}"'
        lines = "\n".join(
            f"{k.capitalize()}: {v}" for k, v in ff.labels_for(self.elements, self.shown).items()
        )
        extra = "" if len(self.shown) == len(el.KINDS) else " (the author chose the other details)"
        return f"Write a short moral fable for young children with these elements{extra}:\n{lines}"


def _parse(item: dict, where: str) -> EvalPrompt:
    try:
        ids = {k: el.lookup(k, item["elements"][k]).id for k in el.KINDS}
        shown = tuple(k for k in el.KINDS if k in item.get("shown", el.KINDS))
        prompt = EvalPrompt(item["id"], ids, shown, item.get("beginning"), item.get("note", ""))
    except (KeyError, TypeError) as exc:
        raise EvalSetError(f"{where}: missing or bad field {exc}") from None
    if not pr.is_reserved(ids["character"], ids["moral"]):
        raise EvalSetError(f"{where}: ({ids['character']}, {ids['moral']}) is not in the evaluation region")
    return prompt


def load(path: str | Path | None = None) -> list[EvalPrompt]:
    """The shipped evaluation set, or the one in `path` (same JSON layout); validated."""
    if path is None:
        text = (resources.files("fabulist.eval") / "data" / "prompts.json").read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise EvalSetError(f"cannot read {path}: {exc.strerror}") from None
    try:
        items = json.loads(text)["prompts"]
    except (ValueError, KeyError, TypeError):
        raise EvalSetError(f"{path or 'prompts.json'}: expected {{'prompts': [...]}}") from None
    prompts = [_parse(item, f"{path or 'prompts.json'} prompt {i}") for i, item in enumerate(items)]
    if len({p.id for p in prompts}) != len(prompts):
        raise EvalSetError(f"{path or 'prompts.json'}: prompt ids must be unique")
    return prompts


def version(path: str | Path | None = None) -> str:
    if path is not None:
        return json.loads(Path(path).read_text(encoding="utf-8")).get("version", "custom")
    text = (resources.files("fabulist.eval") / "data" / "prompts.json").read_text(encoding="utf-8")
    return json.loads(text)["version"]
