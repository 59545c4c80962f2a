"""Guided fables (runtime/guide.py): the state machine on the embedded model's real tokenizer, then the
embedded model itself on ONNX and GGUF, and the CLI."""

import subprocess
import sys

import pytest
from tokenizers import Tokenizer

from fabulist import fable_format as ff
from fabulist.runtime.embedded import resolve
from fabulist.runtime.guide import Guide, GuideError, header_fields
from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams

MORAL = "Always tell the truth, even when it is hard."
PROMPT = ff.prompt({"character": "Fox", "setting": "Forest", "moral": MORAL})


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_file(str(resolve(None) / "tokenizer.json"))


def ids(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def fed(guide, tok, text, context=""):
    """A guide state that has taken the tokens of `text`."""
    state = guide.start(context)
    for t in ids(tok, text):
        state.push(t)
    return state


def run_out(state, tok, eos):
    """Take the state's forced tokens until end of text; their text."""
    out = []
    while (t := state.forced(10_000)) is not None and t != eos:
        out.append(t)
        state.push(t)
    assert t == eos
    return tok.decode(out)


def test_header_fields_and_from_prompt(tok):
    assert header_fields(PROMPT) == {"character": "Fox", "setting": "Forest", "moral": MORAL}
    guide = Guide.from_prompt(tok, PROMPT)
    assert guide.target == f"Moral: {MORAL}" and guide.name is None
    named = Guide(tok, MORAL, "Fox named Nutmeg")
    assert named.name == "Nutmeg" and named.noun_named.search("the fox named")


def test_end_of_text_becomes_the_moral_line(tok):
    guide = Guide(tok, MORAL, "Fox")
    state = fed(guide, tok, "Once a fox lived in the forest.")
    first = state.drawn(guide.eos)
    assert first == ids(tok, "\n")[0]
    state.push(first)
    assert run_out(state, tok, guide.eos) == f"\nMoral: {MORAL}"
    after_break = fed(guide, tok, "Once a fox lived.\n\n")
    after_break.push(after_break.drawn(guide.eos))
    assert after_break.text.endswith("\n\nMoral")


def test_a_moral_line_the_model_starts_is_finished_as_requested(tok):
    guide = Guide(tok, MORAL, "Fox")
    state = fed(guide, tok, "The fox was glad.\n\nMoral:")
    assert tok.decode(state.queue) == f" {MORAL}"  # end of text is a special token: not in the text
    assert state.queue[-1] == guide.eos and state.moral_started
    # the moral's tokens in context are the ones the whole line would have
    assert state.queue[:-1] == ids(tok, f"Moral: {MORAL}")[2:]


def test_the_moral_is_reserved_before_the_limit(tok):
    guide = Guide(tok, MORAL, "Fox")
    state = fed(guide, tok, "The fox ran and ran")
    assert state.forced(guide.reserve() + 1) is None  # room enough: the model writes on
    plan = len(ids(tok, f"\n\nMoral: {MORAL}")) + 1
    for left in range(guide.reserve(), 0, -1):
        tok_id = state.forced(left)
        if tok_id is not None:
            break
        state.push(ids(tok, " ran")[0])
    assert left >= plan  # it began with room for every token of the line and end of text
    assert run_out(state, tok, guide.eos) == f"\n\nMoral: {MORAL}"


def test_named_takes_a_capitalised_word_and_the_character_keeps_its_name(tok):
    guide = Guide(tok, MORAL, "Fox")
    state = fed(guide, tok, "A hen named")
    bans = set(state.banned().tolist())
    assert ids(tok, " asked")[0] in bans and ids(tok, " nap")[0] in bans
    assert ids(tok, " Bean")[0] not in bans
    state = fed(guide, tok, "A timid fox named Silvertwig lived by the oak. One day the fox named")
    assert state.name == "Silvertwig" and tok.decode(state.queue) == " Silvertwig"
    header_named = fed(Guide(tok, MORAL, "Fox named Nutmeg"), tok, "Long ago a little fox named")
    assert tok.decode(header_named.queue) == " Nutmeg"


def test_a_name_cannot_grow_into_a_variant(tok):
    guide = Guide(tok, MORAL, "Fox")
    state = fed(guide, tok, "A fox named Nutmeg lived here. Then Nutmeg")
    bans = set(state.banned().tolist())
    assert ids(tok, "Nutmegwell")[1] in bans  # "well"
    assert ids(tok, ".")[0] not in bans and ids(tok, " smiled")[0] not in bans
    state = fed(guide, tok, "A fox named Nutmeg lived here. Then Nutm")
    bans = set(state.banned().tolist())
    assert ids(tok, "eg")[0] not in bans and ids(tok, "ing")[0] in bans
    assert fed(guide, tok, "A fox named Nutmeg lived here. Then Nut").banned() is None  # 3 letters: free


def test_no_guide_needed_no_ban(tok):
    """Text that no rule concerns gets neither a ban nor a forced token."""
    state = fed(Guide(tok, MORAL, "Fox"), tok, "The fox walked to the river and")
    assert state.banned() is None and state.forced(400) is None


@pytest.mark.parametrize(
    ("moral", "message"),
    [("", "is empty"), ("   ", "is empty"), ("Be kind<|endoftext|>", "control token")],
)
def test_bad_morals_are_clear_errors(tok, moral, message):
    with pytest.raises(GuideError, match=message):
        Guide(tok, moral, "Fox")


def test_untokenizable_moral_and_short_budget_are_clear_errors(tok):
    class Lossy:  # a tokenizer that cannot write "é" back (a fake, for this rule only)
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def decode(self, token_ids):
            return self.real.decode(token_ids).replace("é", "e")

    with pytest.raises(GuideError, match="cannot be written by this model's tokenizer"):
        Guide(Lossy(tok), "Be a good café owner.", "Fox")
    with pytest.raises(GuideError, match="leave no room for the guided moral line"):
        Guide(tok, MORAL, "Fox").check_budget(5)


# --- the embedded model --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[("onnx", "int4"), ("gguf", "q4_k_m")])
def embedded_gen(request):
    fmt, quant = request.param
    return load_generator(resolve(None), fmt, quant)


@pytest.mark.slow
@pytest.mark.parametrize("max_new", [400, 70])
def test_guided_fables_end_with_the_requested_moral(embedded_gen, max_new):
    """Several seeds, a moral the model was not asked for in these words, a long and a short budget."""
    guide = Guide.from_prompt(embedded_gen.tok, PROMPT)
    for seed in range(4):
        params = SamplingParams(temperature=0.8, seed=seed, max_new_tokens=max_new)
        out = embedded_gen.generate(PROMPT, params, guide=guide)[0]
        assert out.text.rstrip().splitlines()[-1] == f"Moral: {MORAL}", out.text
        assert out.text.endswith(f"Moral: {MORAL}") and out.finish_reason == "eos"
        assert len(out.tokens) <= max_new
        assert "named" not in out.text or all(
            w[:1].isupper() for w in out.text.split("named ")[1:]
        )  # no nameless introduction


@pytest.mark.slow
def test_guided_equals_unguided_until_a_rule_acts():
    """Drawing first and again only when banned: the guided fable is the raw one up to its moral line
    when the raw fable breaks no name rule (seed 2 on this model), token for token."""
    gen = load_generator(resolve(None), "onnx", "int4")
    params = SamplingParams(temperature=0.8, seed=2, max_new_tokens=400)
    raw = gen.generate(PROMPT, params)[0].text
    guided = gen.generate(PROMPT, params, guide=Guide.from_prompt(gen.tok, PROMPT))[0].text
    body = raw.rsplit("\n\nMoral:", 1)[0]
    assert raw != guided and guided == f"{body}\n\nMoral: {MORAL}"
    greedy = SamplingParams(temperature=0, max_new_tokens=400)
    assert gen.generate(PROMPT, greedy)[0].text == gen.generate(PROMPT, greedy)[0].text  # unguided: unchanged


@pytest.mark.slow
@pytest.mark.integration
def test_cli_guide_and_its_errors():
    fab = [sys.executable, "-m", "fabulist.cli", "generate", "--character", "fox", "--moral", MORAL]
    done = subprocess.run([*fab, "--guide", "--seed", "3", "--max-new-tokens", "80"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == f"Moral: {MORAL}"
    short = subprocess.run([*fab, "--guide", "--max-new-tokens", "5"], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert short.returncode != 0 and "Traceback" not in short.stderr
    assert short.stderr.strip().splitlines()[-1].endswith("raise max_new_tokens")


@pytest.mark.slow
def test_a_guided_batch_guides_every_sequence_and_matches_one_by_one():
    """n completions in one batch: each keeps its own guide state, and equals the same seed alone."""
    gen = load_generator(resolve(None), "onnx", "int4")
    guide = Guide.from_prompt(gen.tok, PROMPT)
    params = SamplingParams(temperature=0.8, seed=7, max_new_tokens=60)
    batch = gen.generate(PROMPT, params, n=3, guide=guide)
    assert all(c.text.endswith(f"\n\nMoral: {MORAL}") for c in batch)
    assert len({c.text for c in batch}) == 3
    assert [c.tokens for c in batch] == [
        c.tokens for i in range(3) for c in gen._run(PROMPT, params, [i], guide)
    ]
