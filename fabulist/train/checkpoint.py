"""The run folder and its checkpoints: one run per folder (a second, different run is refused), and
checkpoints that restore model, optimizer, RNG, step and data position exactly, written to a temp folder
and renamed into place, loaded as tensors only (safetensors, `torch.load(weights_only=True)`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fabulist.records import write_atomic
from fabulist.train.config import TrainConfig, TrainError


def prepare_out(cfg: TrainConfig, resume: bool, data_hash: str) -> Path:
    """Create or check the run folder; refuse to mix two different runs in one folder."""
    out = Path(cfg.out)
    run_file = out / "run.json"
    wanted = {"config": cfg.identity(), "data_sha256": data_hash}
    if run_file.exists():
        try:
            existing = json.loads(run_file.read_text())
        except json.JSONDecodeError:
            raise TrainError(f"{run_file} is corrupt; choose another --out") from None
        if existing.get("config") != wanted["config"] or existing.get("data_sha256") != data_hash:
            diff = sorted(
                k for k in wanted["config"] if existing.get("config", {}).get(k) != wanted["config"][k]
            )
            what = ", ".join(diff) if diff else "the training data"
            raise TrainError(f"{out} already holds a different run (differs in {what}); choose another --out")
        if not resume:
            raise TrainError(f"{out} already holds this run; pass --resume to continue it")
    elif resume:
        raise TrainError(f"--resume: {out} holds no run to resume")
    elif out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty and holds no fabulist run; choose another --out")
    return out


def save_checkpoint(folder: Path, model, optimizer, state: dict) -> None:
    """model.safetensors + optimizer.pt + rng.safetensors + state.json, renamed into place at the end."""
    import shutil

    import torch
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights.pop("lm_head.weight", None)  # tied to the embedding
    save_file(weights, tmp / "model.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    save_file({"cpu": torch.get_rng_state()}, tmp / "rng.safetensors")
    write_atomic(tmp / "state.json", json.dumps(state, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*[0-9]"))
    return found[-1] if found else None


def load_checkpoint(folder: Path, model, optimizer, identity: dict) -> dict:
    """Restore model, optimizer and RNG; only tensors are loaded (weights_only), never pickled objects."""
    import torch
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / "state.json").read_text())
        weights = load_file(folder / "model.safetensors")
        optim_state = torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
        rng = load_file(folder / "rng.safetensors")["cpu"]
    except Exception as exc:  # safetensors, torch and json each raise their own types
        raise TrainError(f"checkpoint {folder} is corrupt or incomplete ({exc.__class__.__name__})") from None
    if state.get("identity") != identity:
        raise TrainError(f"checkpoint {folder} was made by a different configuration; cannot resume it")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise TrainError(f"checkpoint {folder} does not match the model shape")
    try:
        optimizer.load_state_dict(optim_state)
    except (ValueError, KeyError):
        raise TrainError(f"checkpoint {folder}: optimizer state does not match the model") from None
    torch.set_rng_state(rng)
    return state
