"""Plain prompts for models that are not fable models: `fabulist generate --model DIR --prompt ...` on tiny
random folders of each architecture (tests/export/test_architectures.py builds them), on every artifact
the export writes (ONNX optimum and genai graphs, GGUF), gives PyTorch's greedy continuation token for
token, and text equal to the tokenizer's decode of it (runtime/plain.py, runtime/detok.py)."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fabulist.bench.architectures import CONFIGS, make_folder
from fabulist.cli import main
from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams

pytestmark = pytest.mark.slow
# an accent (two bytes: two tokens in a byte-level BPE), and longer than Gemma's 32-token tiny window
PROMPT = "Once upon a time, a caf\u00e9 fox lived by the river. Every morning it walked to the old mill."
NEW = 16
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARTIFACTS = [("onnx", "fp32", "optimum"), ("onnx", "fp32", "genai"), ("gguf", "f32", "auto")]


def _fold_settings(name: str, folder) -> None:
    """What users' folders say beyond the shared builder: Llama 2's add_bos_token (MobileLLM), Gemma's
    too, and Qwen3's list of end-of-text ids in generation_config.json."""
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    if name == "mobilellm":
        tc.update(add_bos_token=True, bos_token="<s>", eos_token="</s>")
    if name == "gemma3":
        tc.update(add_bos_token=True, bos_token="<bos>", eos_token="<eos>")
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    if name == "qwen3":
        gen = json.loads((folder / "generation_config.json").read_text())
        gen["eos_token_id"] = [gen["eos_token_id"], gen["bos_token_id"]]  # <|im_end|>, <|endoftext|>
        (folder / "generation_config.json").write_text(json.dumps(gen))


_EXPORTED: dict[str, Path] = {}


def _export(name: str, tmp_path_factory) -> Path:
    """The tiny folder of one architecture exported to ONNX fp32 (both graphs) and GGUF f32, once."""
    from fabulist.export.gguf import export_gguf
    from fabulist.export.onnx import export_onnx

    if name not in _EXPORTED:
        folder = make_folder(name, tmp_path_factory.mktemp(name) / "model")
        _fold_settings(name, folder)
        export_onnx(folder, ["fp32"], validate=False, progress=False)
        export_gguf(folder, ["f32"], validate=False, progress=False)
        _EXPORTED[name] = folder
    return _EXPORTED[name]


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, tmp_path_factory):
    return request.param, _export(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def exported_one(tmp_path_factory):
    """For the tests one architecture is enough for: name -> (name, folder)."""
    return lambda name: (name, _export(name, tmp_path_factory))


def torch_greedy(folder, ids: list[int]) -> list[int]:
    """PyTorch's greedy continuation (transformers' generate), without the end-of-text token it stops at."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    config = GenerationConfig.from_pretrained(folder)
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos[0], generation_config=config)  # fmt: skip
    new = out[0, len(ids) :].tolist()
    return new[:-1] if new and new[-1] in eos else new


def _cli(*args):
    return CliRunner().invoke(main, ["generate", *args], catch_exceptions=False)


def _present(folder, fmt, graph):
    return fmt == "gguf" or graph != "genai" or (folder / "onnx-genai" / "fp32" / "model.onnx").is_file()


def test_prompt_ids_are_the_text_with_the_tokenizers_bos(exported):
    from tokenizers import Tokenizer

    name, folder = exported
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    gen = load_generator(folder, "gguf", "f32")
    text_ids = tok.encode(PROMPT, add_special_tokens=False).ids
    bos = {"mobilellm": [1], "gemma3": [2]}.get(name, [])
    assert gen.encode(PROMPT) == bos + text_ids
    eos = json.loads((folder / "config.json").read_text())["eos_token_id"]
    ends = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")] if name == "qwen3" else [eos]
    assert gen.stops == ends


@pytest.mark.parametrize("fmt, quant, graph", ARTIFACTS)
def test_greedy_tokens_and_text_equal_pytorch(exported, fmt, quant, graph):
    name, folder = exported
    assert _present(folder, fmt, graph), f"{name}: no {fmt} {graph} artifact"
    gen = load_generator(folder, fmt, quant, graph=graph)
    ids = gen.encode(PROMPT)
    assert len(ids) > 32  # past the tiny Gemma's sliding window
    [done] = gen.generate(PROMPT, SamplingParams(temperature=0.0, max_new_tokens=NEW))
    expected = torch_greedy(folder, ids)
    assert done.tokens == expected, (name, fmt, graph)
    assert done.text == gen.tok.decode(expected), (name, fmt, graph)
    args = ["--model", str(folder), "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", str(NEW),
            "--format", fmt, "--quant", quant, "--graph", graph]  # fmt: skip
    streamed = _cli(*args)
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == PROMPT + gen.tok.decode(expected) + "\n"
    as_json = json.loads(_cli(*args, "--json").stdout)
    assert as_json["completions"][0]["text"] == PROMPT + done.text
    assert as_json["elements"] == {}


def test_chat_template_wraps_the_prompt(exported_one):
    from transformers import PreTrainedTokenizerFast

    _, folder = exported_one("qwen2.5")
    chat = folder.parent / "chat"
    shutil.copytree(folder, chat)
    tc = {"chat_template": TEMPLATE, "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"}
    (chat / "tokenizer_config.json").write_text(json.dumps(tc))
    rendered = PreTrainedTokenizerFast.from_pretrained(chat).apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == f"<|endoftext|><|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    gen = load_generator(chat, "onnx", "fp32", graph="optimum")
    ids = gen.tok.encode(rendered, add_special_tokens=False).ids
    assert ids[:2] == [gen.tok.token_to_id("<|endoftext|>"), gen.tok.token_to_id("<|im_start|>")]
    expected = torch_greedy(chat, ids)
    args = ["--model", str(chat), "--prompt", PROMPT, "--chat", "--temperature", "0", "--max-new-tokens",
            str(NEW), "--format", "onnx", "--quant", "fp32", "--json"]  # fmt: skip
    out = json.loads(_cli(*args).stdout)
    assert out["prompt"] == rendered
    assert out["completions"][0]["text"] == gen.tok.decode(expected)  # the reply only, no prompt echo


def test_plain_model_errors_are_one_line(exported_one):
    _, folder = exported_one("smollm2")
    base = ["--model", str(folder), "--format", "gguf", "--quant", "f32"]
    cases = [
        (["--prompt", "Hi", "--character", "fox"], 2, "--character needs a fable model; this one is not"),
        (["--prompt", "Hi", "--guide"], 2, "--guide needs a fable model"),
        ([], 2, "this model is not a fable model: give --prompt TEXT"),
    ]
    nochat = folder.parent / "nochat"
    shutil.copytree(folder, nochat)
    (nochat / "tokenizer_config.json").write_text("{}")
    for args, code, message in cases:
        r = CliRunner().invoke(main, ["generate", *base, *args])
        assert r.exit_code == code and message in r.output and r.output.count("\n") == 1, r.output
    r = CliRunner().invoke(main, ["generate", "--model", str(nochat), "--format", "gguf", "--quant", "f32",
                                  "--prompt", "Hi", "--chat"])  # fmt: skip
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "this model's tokenizer_config.json has no chat_template; drop --chat" in r.output


@pytest.mark.parametrize("name", ["smollm2", "mobilellm", "gemma3"])
def test_stream_decoder_joins_to_decode_for_each_tokenizer_kind(name):
    """Byte-level BPE, Llama 2's pieces (a prefix space the decoder strips) and Gemma's, with characters
    outside the vocabulary arriving as <0xNN> byte tokens: streamed one token at a time, the pieces join
    to tokenizer.decode and none holds half a character."""
    from fabulist.bench.architectures import tokenizer_for
    from fabulist.runtime.detok import StreamDecoder

    tok, _ = tokenizer_for(name)
    text = "Caf\u00e9 \u00fcber  two spaces, \U0001f98a fox \u6f22\u5b57 and 42."
    ids = tok.encode(text, add_special_tokens=False).ids
    if name != "smollm2":
        assert any(tok.id_to_token(i).startswith("<0x") for i in ids)  # byte fallback is exercised
    dec = StreamDecoder(tok, decode=True)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == tok.decode(ids)
    assert not any("\ufffd" in p for p in pieces)
    prefix = " " if name == "mobilellm" else ""  # the builder's Llama 2 decoder keeps the prefix space
    assert tok.decode(ids) == prefix + text


def test_bench_run_measures_a_plain_model_with_its_peers(exported_one, tmp_path):
    """`fabulist bench run --model DIR` on a Gemma 3 folder (sliding-window layers, the hardest shape):
    every row whose artifact is there is measured, ours and each peer on the same weights."""
    from fabulist.export.gguf import export_gguf
    from fabulist.export.onnx import export_onnx

    _, folder = exported_one("gemma3")  # one architecture: each row is a process of its own
    model = tmp_path / "model"
    shutil.copytree(folder, model)
    export_onnx(model, ["int4"], validate=False, progress=False)
    export_gguf(model, ["q4_0"], validate=False, progress=False)
    out = tmp_path / "results"
    r = CliRunner().invoke(main, ["bench", "run", "--model", str(model), "--presets", "", "--threads", "1",
                                  "--repeats", "1", "--out", str(out), "--work", str(tmp_path)])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads((out / "results.json").read_text())["rows"]}
    measured = {n for n, row in rows.items() if "skipped" not in row}
    assert measured == {
        "pytorch fp32 (transformers generate)", "ours onnx fp32", "ours onnx int4",
        "ours onnx int4 (optimum graph)", "ours gguf q4_0", "llama-cpp-python q4_0", "onnxruntime-genai int4",
        "optimum ORTModelForCausalLM int4",
    }, {n: row.get("skipped") for n, row in rows.items()}  # fmt: skip
    assert all(rows[n]["tg128_tok_s"] > 0 for n in measured)


def test_chat_on_a_fable_model_is_one_line():
    """The embedded fable-5m has no chat template: --chat is refused before it is loaded."""
    r = CliRunner().invoke(main, ["generate", "--chat", "--prompt", "Hi"])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "--chat is for models with a chat template; a fable model takes --character" in r.output
