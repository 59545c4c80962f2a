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
    web: str | None = None  # the transformers.js dtype of an optimum graph

    @property
    def folder(self) -> str:
        """The folder the artifact lives in (genai's graph is a folder of its own, with genai_config.json)."""
        return self.path.rpartition("/")[0]


ARTIFACTS: tuple[Artifact, ...] = tuple(Artifact(**a) for a in _TABLE["artifacts"])


def quants(fmt: str, graph: str | None = None) -> list[str]:
    """The quantizations a format (and graph) has, in the registry's order, each once."""
    found = [a.quant for a in ARTIFACTS if a.format == fmt and graph in (None, a.graph)]
    return list(dict.fromkeys(found))


def get(fmt: str, quant: str, graph: str | None = None) -> Artifact | None:
    """The artifact of (format, quant[, graph]); with no graph, the first the registry lists (None: none)."""
    return next((a for a in candidates(fmt, quant, graph or "auto")), None)


def candidates(fmt: str, quant: str, graph: str = "auto") -> list[Artifact]:
    """The artifacts that serve (format, quant), in order of preference: for ONNX with graph "auto",
    onnxruntime-genai's graph first (several times faster to decode on CPU), then optimum's."""
    found = [a for a in ARTIFACTS if a.format == fmt and a.quant == quant and graph in ("auto", a.graph)]
    return sorted(found, key=lambda a: GRAPHS.index(a.graph))


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
