"""Fabulist: synthetic moral fables, the small language models trained on them, and an on-device runtime.

Run `fabulist --help` for the stages. This package stays import-light: heavy libraries (torch,
transformers, openai, pyarrow) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
