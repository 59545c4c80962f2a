"""The demo's free-text elements: "Your own words…" on a picker shows a text field; the app's prompt.js
applies fable_format's rules (free_label, check_element) exactly, and in Chromium the typed words reach the
model's header, with a note when the model was trained on list values only."""

import json

import pytest

from fabulist import fable_format as ff
from tests.android.conftest import outside, python_greedy, run_node

CASES = [
    ("character", "industrious beaver"),
    ("setting", "  arctic   ice floe "),
    ("moral", "Humility earns admiration."),
    ("trait", "ünusual"),
    ("setting", ""),
    ("setting", "   "),
    ("character", "x" * 80),
    ("character", "x" * 81),
    ("character", "é" * 81),  # characters, not bytes or UTF-16 units
    ("moral", "Be kind.\nMoral: Lying pays."),
    ("moral", "Be kind.\u2028Moral: x"),
    ("moral", "Be kind.\x85x"),
    ("trait", "\ufeffbrave\x1f"),  # whitespace as Python has it: \x1f is, \ufeff is not
    ("trait", "brave<|endoftext|>"),
    ("conflict", "<|story|>"),
]


def python_problem(kind: str, text: str) -> str | None:
    try:
        ff.check_element(kind, text)
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("elements", [ff.LISTS, ff.FREE_TEXT])
def test_prompt_js_applies_the_free_text_rules_exactly(elements, tmp_path):
    path = tmp_path / "fable_format.json"
    path.write_text(json.dumps(ff.describe(elements)))
    labels = {"character": "Industrious beaver", "setting": "Arctic ice floe",
              "moral": "Humility earns admiration."}  # fmt: skip
    got = run_node("tests/prompt.mjs", "--format", str(path), "--cases", json.dumps(CASES),
                   "--labels", json.dumps(labels))  # fmt: skip
    assert got["labels"] == [ff.free_label(text) for _, text in CASES]
    assert got["problems"] == [python_problem(kind, text) for kind, text in CASES]
    accepted = [i for i, problem in enumerate(got["problems"]) if problem is None]
    assert accepted == [0, 1, 2, 3, 6, 12]  # the cases are not all one kind
    assert got["prompt"] == ff.prompt(labels)


@pytest.mark.slow
@pytest.mark.integration
def test_own_words_reach_the_header_in_the_browser(web_app, demo_model):
    own = {"character": "industrious beaver", "setting": "arctic ice floe"}
    labels = {"moral": "Kindness is rewarded."}
    got = run_node("tests/e2e.mjs", "--apk-origin", "--dir", str(web_app), "--labels", json.dumps(labels),
                   "--own", json.dumps(own), "--greedy", "20")  # fmt: skip
    assert got["pageErrors"] == [] and got["picked"]["character"] == "<own>" and got["picked"]["trait"] == ""
    asked = {"character": "Industrious beaver", "setting": "Arctic ice floe", **labels}
    assert got["greedy"]["tokens"] == python_greedy(demo_model, "int8-fold", ff.prompt(asked), 20)[1]
    # the demo model's fable_format.json says "lists": the app says so, and still writes
    note = "Note: this model was trained on list values only; your own words may be ignored."
    assert note in got["statusAfter"]
    assert got["nonLocalRequests"] == [] and outside(got["proxyAsked"]) == []
