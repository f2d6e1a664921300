"""The batch's key/value cache: rows joined, padded on the left, dropped, and trimmed.

Rows are right-aligned: position `i` of the padded sequence holds every row's token at the same
distance from its end. A row that joins shorter than the batch gets zeros on its left (masked
out); one that joins longer pads everyone else. Rows that end are dropped, and left padding no
row needs any more is cut off.
"""

from __future__ import annotations

import torch

from worker.batching.runner import KVCache, ModelRunner


class BatchCache:
    """The cache of the rows in the batch, in row order, and which positions are real."""

    def __init__(self, runner: ModelRunner) -> None:
        self._runner = runner
        self._dim = runner.seq_dim
        self.layers: KVCache = []
        self.mask = torch.zeros(0, 0, dtype=torch.long)

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        """The padded length: every row's cache is this long."""
        return int(self.mask.shape[1])

    def add(self, row: KVCache) -> None:
        """Append one row (a batch-of-one cache), padding it or the batch on the left."""
        row_length = int(row[0][0].shape[self._dim])
        device = row[0][0].device
        if not self.layers:
            self.layers = list(row)
            self.mask = torch.ones(1, row_length, dtype=torch.long, device=device)
            return
        if row_length < self.length:
            row = self._pad(row, self.length - row_length)
            row_mask = torch.ones(1, row_length, dtype=torch.long, device=device)
            row_mask = torch.cat(
                [
                    torch.zeros(1, self.length - row_length, dtype=torch.long, device=device),
                    row_mask,
                ],
                dim=1,
            )
        else:
            grow = row_length - self.length
            if grow:
                self.layers = self._pad(self.layers, grow)
                pad = torch.zeros(self.rows, grow, dtype=torch.long, device=device)
                self.mask = torch.cat([pad, self.mask], dim=1)
            row_mask = torch.ones(1, row_length, dtype=torch.long, device=device)
        self.layers = [
            (torch.cat([k, rk], dim=0), torch.cat([v, rv], dim=0))
            for (k, v), (rk, rv) in zip(self.layers, row, strict=True)
        ]
        self.mask = torch.cat([self.mask, row_mask], dim=0)

    def step_mask(self) -> torch.Tensor:
        """The mask for one decoding step: the cache's, and the new token, which is real."""
        new = torch.ones(self.rows, 1, dtype=self.mask.dtype, device=self.mask.device)
        return torch.cat([self.mask, new], dim=1)

    def advance(self, layers: KVCache, mask: torch.Tensor) -> None:
        """Take the cache a decoding step returned, one position longer."""
        self.layers = layers
        self.mask = mask

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (indices, in order), then cut left padding none of them needs."""
        if not rows:
            self.layers, self.mask = [], self.mask[:0, :0]
            return
        if len(rows) < self.rows:
            index = torch.tensor(rows, device=self.mask.device)
            self.layers = [
                (k.index_select(0, index), v.index_select(0, index)) for k, v in self.layers
            ]
            self.mask = self.mask.index_select(0, index)
        unused = int((self.mask.cumsum(dim=1) == 0).sum(dim=1).min().item())
        if unused:
            self.layers = self._runner.shift(self._cut(self.layers, unused), -unused)
            self.mask = self.mask[:, unused:]

    def _pad(self, layers: KVCache, count: int) -> KVCache:
        """`layers` with `count` zero positions on the left, their real positions moved later."""
        padded = []
        for k, v in layers:
            shape = list(k.shape)
            shape[self._dim] = count
            zeros = k.new_zeros(shape)
            padded.append(
                (torch.cat([zeros, k], dim=self._dim), torch.cat([zeros.clone(), v], dim=self._dim))
            )
        return self._runner.shift(padded, count)

    def _cut(self, layers: KVCache, count: int) -> KVCache:
        return [
            (
                k.narrow(self._dim, count, k.shape[self._dim] - count),
                v.narrow(self._dim, count, v.shape[self._dim] - count),
            )
            for k, v in layers
        ]
