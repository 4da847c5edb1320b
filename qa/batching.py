"""Questions asked at the same time share one encode call; a question asked again is not encoded again.

The request path's one expensive step is the question's encode. On a CPU, one forward pass over eight short
questions costs little more than over one, and concurrent passes from many threads only fight over the same
cores. So requests hand their question to one encoder thread: while it encodes, newly arrived questions
queue, and the next pass takes them all (up to `max_batch`). A lone question waits for nothing (no timer):
at low load latency is unchanged, under load the batches grow by themselves. Vectors of recent questions
are kept in a small LRU (`QA_QUERY_CACHE`): a widget's suggested questions are asked over and over.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

log = logging.getLogger(__name__)

Encode = Callable[[list[str]], np.ndarray]


class VectorCache:
    """A thread-safe LRU of question → vector; the vectors are read-only (shared by every caller)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        vector.setflags(write=False)
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class QueryBatcher:
    """One encoder thread; `encode(text)` from any thread returns that text's vector.

    A failed pass fails every question in it with the same exception (the callers' requests answer 500 or
    their error, as they would have without batching)."""

    def __init__(self, encode: Encode, max_batch: int) -> None:
        self._encode = encode
        self.max_batch = max(1, max_batch)
        self._queue: list[tuple[str, Future[np.ndarray]]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.passes = self.encoded = 0  # for tests and logs: questions per pass = encoded / passes

    def encode(self, text: str) -> np.ndarray:
        future: Future[np.ndarray] = Future()
        with self._cond:
            self._queue.append((text, future))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="qa-query-encoder", daemon=True)
                self._thread.start()
            self._cond.notify()
        return future.result()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._pass(batch)

    def _pass(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        try:
            vectors = self._encode([text for text, _ in batch])
        except BaseException as exc:  # every waiter learns it; the thread lives on for the next pass
            for _, future in batch:
                future.set_exception(exc)
            return
        self.passes += 1
        self.encoded += len(batch)
        for i, (_, future) in enumerate(batch):
            future.set_result(vectors[i])
