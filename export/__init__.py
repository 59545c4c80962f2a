"""Stage 3, export: a trained Hugging Face folder -> ONNX (fp32/int8/int4) and GGUF artifacts.

Installed as `fabulist.export` (this folder is mapped into the package by pyproject.toml).
"""
