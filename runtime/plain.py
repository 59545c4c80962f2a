"""Plain prompts for models that are not fable models (a SmolLM2, a Qwen, a Gemma exported by Fabulist).

    fabulist generate --model path/to/SmolLM2-135M --prompt "Once upon a time" --temperature 0
    fabulist generate --model path/to/Qwen2.5-0.5B-Instruct --prompt "Tell me a fable." --chat

A fable model's tokenizer has the fable format's special tokens; any other folder is prompted with its
text as is: the tokenizer's BOS first when its tokenizer.json or tokenizer_config.json says to add one,
generation stops at config.json/generation_config.json's `eos_token_id` (an int or a list), and `--chat`
renders tokenizer_config.json's `chat_template` (Jinja, sandboxed as transformers does) with one user
message and add_generation_prompt=True.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fabulist import fable_format as ff
from fabulist.errors import FabulistError
from fabulist.records import read_json_or_empty


class PromptError(FabulistError):
    """A plain prompt that cannot be built (no chat template, a broken template)."""


def is_fable_tokenizer(tokenizer) -> bool:
    """Whether a `tokenizers.Tokenizer` has every fable-format special token (a `fabulist train` model)."""
    return all(tokenizer.token_to_id(t) is not None for t in ff.SPECIAL_TOKENS)


def is_fable_folder(model_dir: Path) -> bool:
    """The same question of a folder, before loading it (a folder without a readable tokenizer.json counts
    as a fable model: loading it then says what is wrong)."""
    data = read_json_or_empty(Path(model_dir) / "tokenizer.json")
    if not data:
        return True
    added = {t.get("content") for t in data.get("added_tokens", []) if isinstance(t, dict)}
    return set(ff.SPECIAL_TOKENS) <= added


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


@dataclass
class PlainFormat:
    """How to prompt a non-fable model: its end-of-text ids, the BOS to put first, its chat template."""

    eos_ids: list[int]
    bos_id: int | None  # prepended to a plain prompt (a chat template writes its own)
    chat_template: str | None
    bos_token: str = ""
    eos_token: str = ""
    chat: bool = False  # prompts are rendered chat templates: encoded as is, no BOS added

    @classmethod
    def from_folder(cls, model_dir: Path, tokenizer) -> PlainFormat:
        model_dir = Path(model_dir)
        config = read_json_or_empty(model_dir / "config.json")
        gen = read_json_or_empty(model_dir / "generation_config.json")
        tc = read_json_or_empty(model_dir / "tokenizer_config.json")
        eos = gen.get("eos_token_id", config.get("eos_token_id"))
        eos_ids = [e for e in (eos if isinstance(eos, list) else [eos]) if isinstance(e, int)]
        bos_token, eos_token = _token_text(tc.get("bos_token")), _token_text(tc.get("eos_token"))
        if bos_token is None and isinstance(config.get("bos_token_id"), int):
            bos_token = tokenizer.id_to_token(config["bos_token_id"])
        if eos_token is None and eos_ids:
            eos_token = tokenizer.id_to_token(eos_ids[0])
        bos_id = tokenizer.token_to_id(bos_token) if bos_token and tc.get("add_bos_token") else None
        template = tc.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return cls(eos_ids, bos_id, template or None, bos_token or "", eos_token or "")

    def encode(self, tokenizer, text: str) -> list[int]:
        """Prompt ids: the tokenizer's own special tokens (its post-processor), then our BOS if asked
        for and not there yet; a rendered chat template is encoded as is (it writes its own BOS)."""
        if self.chat:
            return tokenizer.encode(text, add_special_tokens=False).ids
        ids = tokenizer.encode(text, add_special_tokens=True).ids
        if self.bos_id is not None and ids[:1] != [self.bos_id]:
            ids = [self.bos_id, *ids]
        return ids

    def render_chat(self, prompt: str) -> str:
        """The prompt as one user message through the folder's chat template."""
        if not self.chat_template:
            raise PromptError("--chat: this model's tokenizer_config.json has no chat_template; drop --chat")
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        try:
            return env.from_string(self.chat_template).render(
                messages=[{"role": "user", "content": prompt}], add_generation_prompt=True,
                bos_token=self.bos_token, eos_token=self.eos_token,
            )  # fmt: skip
        except TemplateError as exc:
            raise PromptError(f"--chat: the chat template failed: {str(exc).splitlines()[0][:160]}") from None
