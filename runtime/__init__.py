"""Stage 4, run: a torch-free generation engine over exported artifacts (ONNX Runtime, llama.cpp).

Installed as `fabulist.runtime` (this folder is mapped into the package by pyproject.toml). It imports
numpy, tokenizers, onnxruntime and llama_cpp only: never torch or transformers.
"""
