"""Stage 2, train: a byte-level BPE tokenizer and Llama-architecture small language models."""
