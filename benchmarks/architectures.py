"""The published sub-billion architectures as data, and random-weight Hugging Face folders of them with
tokenizers of each kind users have (byte-level BPE as GPT-2/SmolLM/Qwen, SentencePiece-style BPE with
byte fallback as Llama 2/Gemma): the bring-your-own-model benchmarks build full published shapes with
these, the tests the same configs shrunk (TINY) with every feature kept. Nothing is downloaded.

    from fabulist.bench.architectures import CONFIGS, make_folder, tokenizer_for
    make_folder("qwen2", Path("/tmp/qwen2-tiny"))
"""

from __future__ import annotations

import json

from fabulist.export import validate as va

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "max_position_embeddings": 256}
CONFIGS = {  # the published config.json of each model (sizes then shrunk by TINY and below)
    "smollm2": {  # HuggingFaceTB/SmolLM2-135M
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 0, "eos_token_id": 0,
        "hidden_act": "silu", "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 8192,
        "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 100000, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "vocab_size": 49152,
        "_tiny": {"hidden_size": 96, "num_attention_heads": 6, "num_key_value_heads": 2},
    },
    "mobilellm": {  # MobileLLM-125M's shape: deep-thin (30 layers of 576), Llama 2's kind of tokenizer
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 2048,
        "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": True,
        "vocab_size": 32000,
        "_tiny": {"num_attention_heads": 4, "num_key_value_heads": 1, "num_hidden_layers": 8},
    },
    "qwen2.5": {  # Qwen/Qwen2.5-0.5B
        "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151643,
        "hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768,
        "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
        "tie_word_embeddings": True, "use_sliding_window": False, "vocab_size": 151936,
        "_tiny": {"num_attention_heads": 4, "num_key_value_heads": 2, "max_window_layers": 2,
                  "sliding_window": 256},
    },
    "qwen3": {  # Qwen/Qwen3-0.6B: head_dim 128 x 16 heads is wider than hidden_size 1024
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "bos_token_id": 151643,
        "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
        "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
        "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None,
        "tie_word_embeddings": True, "use_sliding_window": False, "vocab_size": 151936,
        "_tiny": {"head_dim": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "max_window_layers": 2},
    },
    "gemma3": {  # google/gemma-3-270m: local layers with a 512-token window, every sixth layer global
        "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attn_logit_softcapping": None,
        "bos_token_id": 2, "eos_token_id": 1, "final_logit_softcapping": None, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640, "intermediate_size": 2048,
        "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3, "max_position_embeddings": 32768,
        "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 18,
        "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 512,
        "vocab_size": 262144, "use_bidirectional_attention": False,
        "_tiny": {"head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 32, "num_hidden_layers": 6,
                  "layer_types": ["sliding_attention"] * 5 + ["full_attention"]},  # window < text length
    },
}  # fmt: skip
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")  # fmt: skip


def _texts():
    return va.heldout_texts(40, seed=7) + ["Digits 0123456789, 12,345.67; Caf\u00e9 na\u00efve."] * 5


def byte_level_bpe(style: str, specials: list[str], vocab: int = 512):
    """A GPT-2-style byte-level BPE: SmolLM's pre-tokenizer (digits split, then GPT-2's regex) with its
    specials first, or Qwen's (one regex, NFC) with its specials appended after the vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=style == "smollm")
    if style == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.normalizer = normalizers.NFC()
        split = pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False)
        tok.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
    tok.decoder = decoders.ByteLevel()
    first = specials if style == "smollm" else []
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=first, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(_texts(), trainer)
    tok.add_special_tokens(specials)
    return tok


def sentencepiece_bpe(specials: list[str], vocab: int = 600, space_prefix: bool = False):
    """Gemma's kind, as transformers' GemmaConverter writes it: BPE over the whole text with spaces as
    U+2581 (then a Split on " " that finds none), no prefix space, and byte fallback (<0x00>..<0xFF> right
    after the specials) for characters outside the vocabulary. space_prefix: Llama 2's kind, which puts
    U+2581 before the text (a Prepend normalizer) and has no pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    replace = normalizers.Replace(" ", "\u2581")
    tok.normalizer = (
        normalizers.Sequence([normalizers.Prepend("\u2581"), replace]) if space_prefix else replace
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(_texts(), trainer)
    model = json.loads(tok.to_str())["model"]
    old = sorted(model["vocab"], key=model["vocab"].get)
    ordered = specials + [f"<0x{b:02X}>" for b in range(256)] + [t for t in old if t not in specials]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    bpe = models.BPE({t: i for i, t in enumerate(ordered)}, merges, byte_fallback=True, unk_token="<unk>")
    out = Tokenizer(bpe)
    out.normalizer = tok.normalizer
    if not space_prefix:
        out.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    out.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    out.add_special_tokens(specials)
    return out


def tokenizer_for(name: str):
    """The tokenizer and its special ids as the published model numbers them (its config's bos/eos)."""
    if name == "smollm2":
        tok = byte_level_bpe("smollm", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        return tok, {"bos_token_id": 0, "eos_token_id": 0}
    if name == "mobilellm":
        tok = sentencepiece_bpe(["<unk>", "<s>", "</s>"], space_prefix=True)
        return tok, {"bos_token_id": 1, "eos_token_id": 2}
    if name == "gemma3":
        tok = sentencepiece_bpe(["<pad>", "<eos>", "<bos>", "<unk>"])
        return tok, {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
    tok = byte_level_bpe("qwen", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    end = tok.token_to_id("<|endoftext|>")
    return tok, {
        "bos_token_id": end,
        "eos_token_id": tok.token_to_id("<|im_end|>") if name == "qwen3" else end,
    }


def make_folder(name: str, folder, seed: int = 0):
    """A Hugging Face folder of architecture `name`: the published config shrunk, random seeded weights
    (scaled up so logits are not all near zero; saved in bfloat16 where the published config says so),
    the tokenizer, tokenizer_config.json with a chat template."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok, ids = tokenizer_for(name)
    published = dict(CONFIGS[name])
    shrunk = published.pop("_tiny")
    config = {**published, **TINY, **shrunk, **ids}
    config["vocab_size"] = -(-tok.get_vocab_size() // 64) * 64  # padded embedding rows, as Qwen's
    (folder / "config.json").write_text(json.dumps(config))
    tok.save(str(folder / "tokenizer.json"))
    template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.08) if p.dim() == 2 else p.normal_(0.0, 0.1)
    if config.get("torch_dtype") == "bfloat16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def train_briefly(folder, steps: int = 80, lr: float = 2e-3, seed: int = 0) -> float:
    """Teach a random folder (any architecture) the fable format for a few AdamW steps on the frozen
    calibration fables (never the validation probes; batches of 8 x up to 128 tokens), saved in fp32, so
    its next-token distributions are peaked as a trained model's are: random weights give near-flat ones,
    on which a gate of top-1 agreement measures noise. Returns the last loss."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from fabulist.export.calib import calibration_texts

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = [e.ids[:128] for e in tok.encode_batch(calibration_texts()[0], add_special_tokens=False)]
    width = min(map(len, rows))
    ids = torch.tensor([r[:width] for r in rows])  # (64, width)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        for step in range(steps):
            batch = ids[(step * 8) % len(ids) :][:8]
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval().save_pretrained(folder, safe_serialization=True)
    return loss.item()
