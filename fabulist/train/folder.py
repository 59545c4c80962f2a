"""What a finished run leaves for every later stage: the Hugging Face folder (weights, generation config),
training.json, and the plots of its metrics log (loss.png, quality.png); and the metrics-log helpers a
resumed run needs."""

from __future__ import annotations

import json
from pathlib import Path

from fabulist.records import write_atomic
from fabulist.thresholds import CHECKS
from fabulist.train import tokenizer as tk


def keep_rows_up_to(path: Path, step: int) -> None:
    """Drop log rows after `step` (written after the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        write_atomic(path, "".join(line + "\n" for line in kept))


def last_valid_loss(path: Path) -> float | None:
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    losses = [r["valid_loss"] for r in rows if "valid_loss" in r]
    return losses[-1] if losses else None


def build_model(preset, tok, seed: int, context: int | None = None):
    """A LlamaForCausalLM of the preset's shape for this tokenizer, its weights initialised from seed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**preset.llama_config(tok.get_vocab_size(), tk.special_ids(tok)))
    config.max_position_embeddings = context or preset.context
    return LlamaForCausalLM(config)


def save_model(model, tok, out: Path) -> None:
    """The model's Hugging Face files: model.safetensors, config.json, and generation_config.json (the
    special token ids and the sampling defaults a fable is written with)."""
    from transformers import GenerationConfig

    model.save_pretrained(out, safe_serialization=True)
    special = tk.special_ids(tok)
    GenerationConfig(
        bos_token_id=special["bos"], eos_token_id=special["eos"], pad_token_id=special["pad"],
        do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=400,
    ).save_pretrained(out)  # fmt: skip


def random_folder(out: Path, preset, tok, context: int | None = None, seed: int = 0,
                  std: float | None = None) -> Path:  # fmt: skip
    """A model folder as `fabulist train` writes it (tokenizer files, config, generation config, weights)
    with random seeded weights: what the benchmarks measure and the tests export. std: draw every matrix
    from N(0, std) after the init (larger weights, so logits are not all near zero)."""
    import torch

    tk.save(tok, out, context=context or preset.context)
    model = build_model(preset, tok, seed, context)
    if std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, std)
    save_model(model, tok, out)
    return out


def export_hf(model, tok, out: Path, record: dict) -> None:
    """The Hugging Face folder every later stage reads, the training record and the loss-curve PNG."""
    save_model(model, tok, out)
    write_atomic(out / "training.json", json.dumps(record, indent=1))
    plot_losses(out / "metrics.jsonl", out / "loss.png")
    plot_quality(out / "metrics.jsonl", out / "quality.png")


def plot_losses(metrics: Path, png: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([r["tokens"] for r in rows], [r["loss"] for r in rows], label="train", lw=1)
    valid = [r for r in rows if "valid_loss" in r]
    if valid:
        ax.plot([r["tokens"] for r in valid], [r["valid_loss"] for r in valid], "o-", label="validation")
    ax.set(xlabel="tokens seen", ylabel="cross-entropy (nats/token)", title=f"{png.parent.name}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(png, buf.getvalue())


def plot_quality(metrics: Path, png: Path) -> bool:
    """Validation loss against the judge-free quality metrics of each evaluation (element coverage on the
    left; distinct-2 and 4-gram repetition on the right), points joined in step order; against the step
    when the run has no validation data. False (and no file) when no evaluation measured quality."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "quality" in r]
    if not rows:
        return False
    by_loss = all("valid_loss" in r for r in rows)
    x = [r["valid_loss"] if by_loss else r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    groups = (CHECKS, ("distinct_2", "repetition_4gram"))
    for ax, keys in zip(axes, groups, strict=True):
        for k in (k for k in keys if all(k in r["quality"] for r in rows)):  # older runs lack newer checks
            ax.plot(x, [r["quality"][k] for r in rows], "o-", ms=3, label=k)
        ax.set(xlabel="validation loss (nats/token)" if by_loss else "step", ylim=(-0.02, 1.02))
        if by_loss and len(set(x)) > 1:
            ax.invert_xaxis()  # training goes to the right
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set(ylabel="share of fables", title="element coverage and glitch-free fables")
    axes[1].set(title="diversity and repetition")
    n = rows[-1]["quality"]["fables"]
    fig.suptitle(f"{png.parent.name}: judge-free quality of {n} sampled fables per evaluation")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(png, buf.getvalue())
    return True
