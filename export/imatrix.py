"""Importance matrices for llama.cpp's quantizer: collected in PyTorch, stored in llama.cpp's imatrix file.

    fabulist export runs/X --format gguf --quant int4 --method imatrix   # writes gguf/imatrix.gguf

llama.cpp's imatrix (llama-imatrix, PR 4861) is, for every weight matrix it quantizes, the mean over
calibration tokens of each input column's squared activation: E[x_j^2]. The quantizer weighs column j's
rounding error by it, so columns that see large inputs are rounded more carefully. Here the inputs of
every nn.Linear are collected with forward hooks over the calibration fables (calib.py), under the names
llama.cpp gives the matrices (arch.py). The LM head is included (as `llama-imatrix --process-output`
does); a tied head is stored under token_embd.weight, the matrix llama.cpp then quantizes as the output.

The file is llama.cpp's current GGUF imatrix format, which `llama-quantize --imatrix` reads:
general.type "imatrix", imatrix.datasets / chunk_count / chunk_size, and per matrix `<name>.in_sum2`
(F32, the sum of squares over tokens) and `<name>.counts` (F32, the number of tokens). The quantizer is
handed sum / count, as llama-quantize computes it from the file (`importance`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fabulist.export import arch as ar
from fabulist.export.errors import ExportError

FILE = "imatrix.gguf"  # in the model's gguf/ folder
_SUMS, _COUNTS = ".in_sum2", ".counts"


@dataclass
class IMatrix:
    """Per matrix (llama.cpp name): the sum of squared inputs per input column, and the token count."""

    sums: dict[str, np.ndarray]  # (in_features,) float32
    counts: dict[str, float]
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0  # calibration sequences
    chunk_size: int = 0  # tokens per sequence at most

    def importance(self) -> dict[str, np.ndarray]:
        """What llama.cpp's quantizer weighs by: the mean squared input of each column (sum / count)."""
        counts = self.counts
        return {n: (s / counts[n]).astype(np.float32) for n, s in self.sums.items() if counts[n] > 0}


def collect(model_dir: Path, texts: list[str], max_tokens: int, dataset: str = "calib",
            model=None) -> IMatrix:  # fmt: skip
    """Run the PyTorch fp32 model (`model`, else loaded from model_dir) over texts (one sequence each, up to
    max_tokens) and sum the squared inputs of every linear layer llama.cpp quantizes."""
    import torch
    from tokenizers import Tokenizer

    from fabulist.export import validate as va

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    model = model if model is not None else va.load_reference(model_dir)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(_module, inputs):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to(torch.float64)  # (tokens, in)
            sums[name] = sums.get(name, 0) + (x * x).sum(0)
            counts[name] = counts.get(name, 0) + x.shape[0]

        return record

    handles = [
        module.register_forward_pre_hook(hook(name))
        for name, module in _linears(model, config)
    ]  # fmt: skip
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    seqs = [tokenizer.encode(t, add_special_tokens=False).ids[:max_tokens] for t in texts]
    seqs = [s for s in seqs if s]
    try:
        with torch.no_grad():
            for ids in seqs:
                model(input_ids=torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    return IMatrix(
        sums={n: s.numpy().astype(np.float32) for n, s in sums.items()},
        counts={n: float(c) for n, c in counts.items()},
        datasets=[dataset],
        chunk_count=len(seqs),
        chunk_size=max_tokens,
    )


def _linears(model, config: dict):
    """(llama.cpp matrix name, nn.Linear) for every linear layer of the model."""
    import torch

    # tied as the loaded model is (its class's default where config.json is silent: Gemma 3 ties, unsaid)
    tied = bool(getattr(model.config, "tie_word_embeddings", config.get("tie_word_embeddings", False)))
    for hf, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        name = ar.gguf_tensor_name(config, hf + ".weight")
        if name == "output.weight" and tied:
            name = "token_embd.weight"  # llama.cpp multiplies by the embedding matrix as the output
        yield name, module


def write(path: Path, im: IMatrix) -> None:
    """The imatrix in llama.cpp's GGUF imatrix format, written under a temporary name and renamed."""
    import os

    import gguf

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        writer = gguf.GGUFWriter(tmp, arch="")
        writer.kv_data[0].pop(gguf.Keys.General.ARCHITECTURE, None)  # llama-imatrix writes none
        writer.add_type(gguf.GGUFType.IMATRIX)
        writer.add_array(gguf.Keys.IMatrix.DATASETS, im.datasets)
        writer.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, im.chunk_count)
        writer.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, im.chunk_size)
        for name in sorted(im.sums):
            # ggml shapes (ne0, ne1) = (columns, experts) and (1, experts): numpy's are reversed
            writer.add_tensor(name + _SUMS, im.sums[name].astype(np.float32).reshape(1, -1))
            writer.add_tensor(name + _COUNTS, np.array([[im.counts[name]]], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: Path) -> IMatrix:
    """An imatrix file in llama.cpp's GGUF format (dense models: one expert per matrix)."""
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:
        raise ExportError(f"{path} is not a GGUF imatrix file ({type(e).__name__}: {e})") from None
    fields = reader.fields
    if gguf.Keys.IMatrix.CHUNK_COUNT not in fields:
        raise ExportError(f"{path} is a GGUF file but not an imatrix (no {gguf.Keys.IMatrix.CHUNK_COUNT})")
    tensors = {t.name: np.array(t.data, dtype=np.float32).reshape(-1) for t in reader.tensors}
    names = [n[: -len(_SUMS)] for n in tensors if n.endswith(_SUMS)]
    missing = [n for n in names if n + _COUNTS not in tensors]
    if missing or not names:
        raise ExportError(f"{path}: imatrix entries without counts ({', '.join(missing) or 'no entries'})")
    datasets = fields.get(gguf.Keys.IMatrix.DATASETS)
    return IMatrix(
        sums={n: tensors[n + _SUMS] for n in names},
        counts={n: float(tensors[n + _COUNTS].sum()) for n in names},
        datasets=datasets.contents() if datasets is not None else [],
        chunk_count=int(fields[gguf.Keys.IMatrix.CHUNK_COUNT].contents()),
        chunk_size=int(fields[gguf.Keys.IMatrix.CHUNK_SIZE].contents()),
    )


def check_fits(importance: dict[str, np.ndarray], widths: dict[str, int], source: str) -> None:
    """Refuse an importance matrix made for another model: every entry must name a matrix of this model
    with as many input columns (llama.cpp would abort on a size mismatch mid-file). source: what the
    message calls it ("imatrix FILE")."""
    for name, values in importance.items():
        if name not in widths:
            raise ExportError(f"{source} does not fit this model: the model has no matrix {name}")
        if values.shape != (widths[name],):
            raise ExportError(
                f"{source} does not fit this model: {name} has {widths[name]} input columns, "
                f"the imatrix {values.size} (an imatrix of another model?)"
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ExportError(f"{source}: {name} has negative or non-finite values")


def c_array(importance: dict[str, np.ndarray]):
    """llama.cpp's `const struct llama_model_imatrix_data *`: a NULL-terminated array of (name, data,
    size), and the Python objects that must outlive the quantize call (the array points into them)."""
    import ctypes

    import llama_cpp

    keep = [(name.encode(), np.ascontiguousarray(v, dtype=np.float32)) for name, v in importance.items()]
    array = (llama_cpp.llama_model_imatrix_data * (len(keep) + 1))()
    for i, (name, values) in enumerate(keep):
        array[i].name = name
        array[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        array[i].size = values.size
    return array, keep  # array[len(keep)] stays zeroed: the terminator
