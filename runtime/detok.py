"""Streaming detokenization that never emits a broken character.

A byte-level BPE token can end in the middle of a multi-byte UTF-8 character (an emoji is four bytes,
often split over two or three tokens). `StreamDecoder` turns each token back into its bytes and feeds
them to an incremental UTF-8 decoder, which holds an incomplete character until its last byte arrives.

Other tokenizers (SentencePiece-style pieces with "\u2581" for a space and <0xNN> byte-fallback tokens,
Llama 2's and Gemma's kind) are decoded with `decode=True`: the tokenizer's own decoder runs over the
tokens since the last emitted text, and the new text is emitted once it no longer ends in an incomplete
character (U+FFFD), so the stream joins to `tokenizer.decode(all_tokens)`. Fable models keep the byte path.
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

    def __init__(self, tokenizer, skip: set[int] = frozenset(), decode: bool = False):
        self.tokenizer, self.skip, self.decode = tokenizer, skip, decode
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._bytes = _byte_decoder()
        self._ids: list[int] = []  # decode=True: tokens from the last emitted boundary on
        self._done = 0  # how many of them the emitted text already covers

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
        if self.decode:
            return self._push_decoded(token_id)
        return self._utf8.decode(self.token_bytes(token_id))

    def _push_decoded(self, token_id: int) -> str:
        # Decoding from a few tokens back keeps decoders that look at neighbours (a space piece, a stripped
        # first space) giving the text they give on the whole sequence.
        before = self.tokenizer.decode(self._ids[: self._done]) if self._done else ""
        self._ids.append(token_id)
        text = self.tokenizer.decode(self._ids)
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""  # an incomplete character (or nothing visible yet): wait for the next token
        new = text[len(before) :]
        self._ids, self._done = self._ids[self._done :], len(self._ids) - self._done
        return new

    def flush(self) -> str:
        """What is left at the end (an incomplete character becomes U+FFFD)."""
        if self.decode:
            before = self.tokenizer.decode(self._ids[: self._done]) if self._done else ""
            text = self.tokenizer.decode(self._ids) if self._ids else ""
            self._ids, self._done = [], 0
            return text[len(before) :]
        return self._utf8.decode(b"", final=True)
