"""Turning one row's token ids into text as they come, one piece per token at most.

A character can take several tokens (UTF-8 bytes split across byte-level BPE tokens), and a
token's text can depend on the one before it, so each step decodes a short window of recent
ids and emits only what the new id added, holding back a piece that ends mid-character. The
pieces joined are the decoding of all the ids at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]
# What a decoder writes for bytes that are not (yet) a whole character.
UNFINISHED = "\ufffd"


class IncrementalText:
    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # the window's start: ids before it are emitted and settled
        self._read = 0  # ids up to here are emitted

    def add(self, token: int) -> str:
        """The text `token` adds; empty while it ends in the middle of a character."""
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith(UNFINISHED):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """What is still held back, once no more ids will come."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]
