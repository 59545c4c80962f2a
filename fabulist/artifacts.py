"""The model folder's artifact registry: which file holds which exported artifact, written once.

    from fabulist import artifacts
    artifacts.get("onnx", "int4", "genai").path        # 'onnx-genai/int4/model.onnx'
    artifacts.candidates("onnx", "int4")               # genai's graph first (faster), then optimum's
    artifacts.by_path("gguf/model-q4_k_m.gguf").quant  # 'q4_k_m'

Every stage that writes or reads an artifact (export, the runtime, packing, the benchmarks, the ladder) asks
this module; `artifacts.json` beside it is the registry itself, so the mobile demo's build script reads the
same table. A test (tests/test_artifacts.py) fails on an artifact path spelled anywhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

_TABLE = json.loads(resources.files("fabulist").joinpath("artifacts.json").read_text(encoding="utf-8"))

CONFIG: str = _TABLE["config"]  # the Hugging Face folder's files
WEIGHTS: str = _TABLE["weights"]
TOKENIZER: str = _TABLE["tokenizer"]
MANIFEST: str = _TABLE["manifest"]  # what `fabulist export` wrote, with each artifact's validation
FORMATS = ("onnx", "gguf")
GRAPHS = ("genai", "optimum", "gguf")  # genai: onnxruntime-genai's builder graph; optimum: transformers.js'


@dataclass(frozen=True)
class Artifact:
    format: str  # onnx | gguf
    graph: str  # genai | optimum | gguf
    quant: str  # fp32 int8 int4 ... (ONNX), f32 f16 q8_0 q4_0 q4_k_m ... (GGUF)
    path: str  # relative to the model folder
    method: str | None = None  # set on a second file of a precision that only this method writes
    web: str | None = None  # the transformers.js dtype of an optimum graph

    @property
    def precision(self) -> str:
        """The name people pick it by: the quant, or quant-method for a method's own file (int8-fold)."""
        return self.quant if self.method is None else f"{self.quant}-{self.method}"

    @property
    def folder(self) -> str:
        """The folder the artifact lives in (genai's graph is a folder of its own, with genai_config.json)."""
        return self.path.rpartition("/")[0]


ARTIFACTS: tuple[Artifact, ...] = tuple(Artifact(**a) for a in _TABLE["artifacts"])


def quants(fmt: str, graph: str | None = None) -> list[str]:
    """The precisions a format (and graph) has, in the registry's order, each once (int8-fold included)."""
    found = [a.precision for a in ARTIFACTS if a.format == fmt and graph in (None, a.graph)]
    return list(dict.fromkeys(found))


def get(fmt: str, quant: str, graph: str | None = None, method: str | None = None) -> Artifact | None:
    """The artifact of (format, quant[, graph][, method]); with no graph, the one `candidates` prefers
    (None: none). A method names its own file only where the registry has a row for it (int8 fold)."""
    return next((a for a in candidates(fmt, quant, graph or "auto", method)), None)


def candidates(fmt: str, quant: str, graph: str = "auto", method: str | None = None) -> list[Artifact]:
    """The artifacts that serve (format, quant), in order of preference: for ONNX with graph "auto",
    onnxruntime-genai's graph first (several times faster to decode on CPU), then optimum's. A method
    without a row of its own writes the precision's usual file."""
    if method is None and "-" in quant:  # a precision name: int8-fold
        quant, method = quant.split("-", 1)
    rows = [a for a in ARTIFACTS if a.format == fmt and a.quant == quant and graph in ("auto", a.graph)]
    own = [a for a in rows if a.method == method]
    found = own if own else [a for a in rows if a.method is None]
    return sorted(found, key=lambda a: GRAPHS.index(a.graph))


def web() -> list[Artifact]:
    """The graphs the browser demo can load (transformers.js), in the registry's order."""
    return [a for a in ARTIFACTS if a.web is not None]


def by_path(path: str) -> Artifact | None:
    """The artifact a relative path names (None: not an artifact path)."""
    return next((a for a in ARTIFACTS if a.path == str(path)), None)


def identify(path) -> Artifact | None:
    """The artifact a file is, from where it lies in its model folder (any absolute or relative path that
    ends in a registry path; None: not an artifact)."""
    posix = str(path).replace("\\", "/")
    return next((a for a in ARTIFACTS if posix == a.path or posix.endswith("/" + a.path)), None)


def is_exact_gguf(path) -> bool:
    """A float32 GGUF: the runtime gives it a float32 KV cache too, for exact parity with PyTorch."""
    found = identify(path)
    return found is not None and (found.format, found.quant) == ("gguf", "f32")
