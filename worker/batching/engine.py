"""The batch engine: one thread that owns the model and decodes every running row together.

Stages submit a `Generation` from their own threads and read its `RowStream`. Between two
decoding steps the engine admits what is waiting (prefilling each alone, then adding it to the
batch), then decodes one token for every row. A row whose prefill fails fails alone; a decoding
step that fails fails the rows in it, since their tokens came from one forward pass.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor

from shared.errors import ModelError
from shared.logging import current_job_id
from worker.backends.base import GenerationStats
from worker.batching.cache import BatchCache
from worker.batching.runner import ModelRunner
from worker.batching.sampling import Sampling, TokenChooser
from worker.batching.text import Decode, IncrementalText

logger = logging.getLogger(__name__)

# A row's reader wakes this often with nothing new, so its stage can check for a cancel or a
# time limit while the model is busy with other rows.
TICK_SECONDS = 0.1


@dataclass
class Generation:
    """One request for text: a prompt the runner can prefill, and when to stop."""

    prompt: Any
    prompt_tokens: int
    max_new_tokens: int
    sampling: Sampling
    stop_ids: frozenset[int]
    decode: Decode
    job_id: str | None = None
    seed: int | None = None
    # A backend's own logits processors, run for this row before its sampling.
    processors: tuple[LogitsProcessor, ...] = ()


_END = object()


class RowStream(Iterator["str | GenerationStats"]):
    """A row's output as its stage reads it: text pieces, then one GenerationStats. While
    nothing new comes it yields "" every TICK_SECONDS; `close()` stops the row."""

    def __init__(self) -> None:
        self._items: queue.Queue[object] = queue.Queue()
        self.closed = threading.Event()
        self._ended = False

    def put(self, item: object) -> None:
        self._items.put(item)

    def __next__(self) -> str | GenerationStats:
        if self._ended:
            raise StopIteration
        try:
            item = self._items.get(timeout=TICK_SECONDS)
        except queue.Empty:
            return ""
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        assert isinstance(item, str | GenerationStats)
        return item

    def close(self) -> None:
        """The reader is done (cancel, time limit, an error): the engine drops the row."""
        self.closed.set()


@dataclass
class _Row:
    generation: Generation
    stream: RowStream
    chooser: TokenChooser
    text: IncrementalText
    ids: torch.Tensor  # prompt and generated ids, for repetition penalties
    length: int  # real tokens in the row's cache
    generated: int = 0
    last: int = 0
    finish_reason: str | None = None


class BatchEngine:
    """Continuous batching on one model: at most `max_batch` rows decode together, and, where
    memory is counted, at most `max_cache_tokens` positions of cache (rows times padded length)."""

    def __init__(
        self, runner: ModelRunner, max_batch: int, max_cache_tokens: int | None = None
    ) -> None:
        self.runner = runner
        self.max_batch = max_batch
        self.max_cache_tokens = max_cache_tokens
        self._waiting: deque[tuple[Generation, RowStream]] = deque()
        self._wake = threading.Condition()
        self._rows: list[_Row] = []
        self._cache = BatchCache(runner)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="batch-engine", daemon=True)
        self.steps = 0
        self.rows_decoded = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def submit(self, generation: Generation) -> RowStream:
        """Queue `generation`; it joins the batch between two steps."""
        stream = RowStream()
        with self._wake:
            if self._stopping:
                raise ModelError("the model is shutting down")
            self._waiting.append((generation, stream))
            self._wake.notify()
        return stream

    @property
    def running(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not self._stopping and not self._waiting and not self._rows:
                        self._wake.wait()
                    if self._stopping:
                        break
                self._admit()
                if self._rows:
                    self._step()
        for row in self._rows:
            row.stream.put(ModelError("the model is shutting down"))
        for _, stream in self._waiting:
            stream.put(ModelError("the model is shutting down"))

    def _admit(self) -> None:
        """Prefill what is waiting and add it to the batch, while there is room."""
        while len(self._rows) < self.max_batch:
            with self._wake:
                if not self._waiting:
                    return
                generation, stream = self._waiting[0]
                if stream.closed.is_set():
                    self._waiting.popleft()
                    stream.put(_END)
                    continue
                if not self._fits(generation):
                    return  # it waits for the batch to drain; first come, first served
                self._waiting.popleft()
            self._start_row(generation, stream)

    def _fits(self, generation: Generation) -> bool:
        """Whether the row can join now: the padded batch it makes, at its longest, stays
        within the runner's length limit and the memory counted for caches. A row alone
        always starts."""
        if not self._rows:
            return True
        remaining = max(r.generation.max_new_tokens - r.generated for r in self._rows)
        longest = max(self._cache.length, generation.prompt_tokens)
        final = longest + max(remaining, generation.max_new_tokens)
        limit = self.runner.max_batched_length
        if limit is not None and final > limit:
            return False
        cache_limit = self.max_cache_tokens
        return cache_limit is None or (len(self._rows) + 1) * final <= cache_limit

    def _start_row(self, generation: Generation, stream: RowStream) -> None:
        try:
            prefilled = self.runner.prefill(generation.prompt)
        except Exception as exc:
            logger.error("prefill failed: %s", exc, extra={"job_id": generation.job_id})
            stream.put(ModelError(f"generation failed: {type(exc).__name__}: {exc}"))
            return
        row = _Row(
            generation=generation,
            stream=stream,
            chooser=TokenChooser(generation.sampling, generation.seed, generation.processors),
            text=IncrementalText(generation.decode),
            ids=prefilled.prompt_ids.to(prefilled.logits.device),
            length=int(prefilled.prompt_ids.shape[0]),
        )
        if self._take(row, prefilled.logits):
            self._finish(row)
            return
        self._cache.add(prefilled.cache)
        self._rows.append(row)

    def _step(self) -> None:
        """Decode one token for every row; finish the rows that stop."""
        rows = self._rows
        device = self._cache.mask.device
        tokens = torch.tensor([r.last for r in rows], device=device)
        positions = torch.tensor([r.length for r in rows], device=device)
        mask = self._cache.step_mask()
        try:
            logits, layers = self.runner.decode(tokens, self._cache.layers, mask, positions)
        except Exception as exc:
            jobs = ", ".join(str(row.generation.job_id) for row in rows)
            logger.exception("a decoding step of %d rows failed (jobs %s)", len(rows), jobs)
            error = ModelError(f"generation failed: {type(exc).__name__}: {exc}")
            for row in rows:
                row.stream.put(error)
            self._rows = []
            self._cache.keep([])
            return
        self._cache.advance(layers, mask)
        self.steps += 1
        self.rows_decoded += len(rows)
        greedy = [i for i, r in enumerate(rows) if r.chooser.plain_greedy]
        chosen = dict(zip(greedy, logits[greedy].argmax(dim=-1).tolist(), strict=True))
        keep: list[int] = []
        for i, row in enumerate(rows):
            row.length += 1
            if self._take(row, logits[i], chosen.get(i)):
                self._finish(row)
            else:
                keep.append(i)
        if len(keep) < len(rows):
            self._rows = [rows[i] for i in keep]
            self._cache.keep(keep)

    def _take(self, row: _Row, logits: torch.Tensor, token: int | None = None) -> bool:
        """Choose the row's next token, stream its text; True if the row has ended."""
        if row.stream.closed.is_set():
            row.finish_reason = "canceled"
            return True
        if token is None:
            token = row.chooser.choose(logits, row.ids)
        row.generated += 1
        if token in row.generation.stop_ids:
            # Counted, as `generate` counts its end token, but not shown.
            row.finish_reason = "stop"
            return True
        row.last = token
        if row.chooser.looks_back:
            row.ids = torch.cat([row.ids, row.ids.new_tensor([token])])
        piece = row.text.add(token)
        if piece:
            row.stream.put(piece)
        if row.generated >= row.generation.max_new_tokens:
            row.finish_reason = "length"
            return True
        return False

    def _finish(self, row: _Row) -> None:
        if row.finish_reason != "canceled":
            rest = row.text.flush()
            if rest:
                row.stream.put(rest)
            row.stream.put(
                GenerationStats(
                    prompt_tokens=row.generation.prompt_tokens,
                    completion_tokens=row.generated,
                    finish_reason=row.finish_reason or "stop",
                )
            )
        row.stream.put(_END)


def stream(
    engine: BatchEngine, generation: Generation
) -> Generator[str | GenerationStats, None, None]:
    """Submit `generation` and yield its row's output; closing this iterator stops the row.
    Run in a stage's thread: the engine's own log lines about the row name the stage's job."""
    if generation.job_id is None:
        generation.job_id = current_job_id()
    rows = engine.submit(generation)
    try:
        yield from rows
    finally:
        rows.close()
