"""Streaming detokenization that never emits a broken character.

A byte-level BPE token can end in the middle of a multi-byte UTF-8 character (an emoji is four bytes,
often split over two or three tokens). `StreamDecoder` turns each token back into its bytes and feeds
them to an incremental UTF-8 decoder, which holds an incomplete character until its last byte arrives.
"""

from __future__ import annotations

import codecs
from functools import cache


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character standing for each byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


class StreamDecoder:
    """Feed token ids one at a time; get back the text they complete (possibly empty)."""

    def __init__(self, tokenizer, skip: set[int] = frozenset()):
        self.tokenizer, self.skip = tokenizer, skip
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._bytes = _byte_decoder()

    def token_bytes(self, token_id: int) -> bytes:
        piece = self.tokenizer.id_to_token(token_id)
        if piece is None:
            return b""
        try:
            return bytes(self._bytes[c] for c in piece)
        except KeyError:  # an added/special token: its text is literal
            return piece.encode()

    def push(self, token_id: int) -> str:
        if token_id in self.skip:
            return ""
        return self._utf8.decode(self.token_bytes(token_id))

    def flush(self) -> str:
        """What is left at the end (an incomplete character becomes U+FFFD)."""
        return self._utf8.decode(b"", final=True)
