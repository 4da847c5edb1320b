"""Questions asked together share one encode pass; a lone question waits for nothing; failures reach every
waiter; the vector cache is a bounded LRU of read-only vectors."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa.batching import QueryBatcher, VectorCache

DIM = 4


class SlowEncoder:
    """Encodes each text as a vector of its length; each pass takes `seconds` (the model's forward pass)."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.passes: list[list[str]] = []
        self.fail = False

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.passes.append(list(texts))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("encoder broke")
        return np.asarray([[len(t), 1, 0, 0] for t in texts], dtype=np.float32)


def test_a_lone_question_is_encoded_at_once_and_alone() -> None:
    encoder = SlowEncoder(0.0)
    batcher = QueryBatcher(encoder, max_batch=8)
    assert batcher.encode("日本").tolist() == [2, 1, 0, 0]
    assert encoder.passes == [["日本"]]


def test_questions_arriving_during_a_pass_share_the_next_one() -> None:
    encoder = SlowEncoder(0.1)
    batcher = QueryBatcher(encoder, max_batch=8)
    texts = ["a" * n for n in range(1, 10)]
    with ThreadPoolExecutor(len(texts)) as pool:
        first = pool.submit(batcher.encode, texts[0])
        time.sleep(0.03)  # the first pass is running: the rest queue behind it
        rest = [pool.submit(batcher.encode, t) for t in texts[1:]]
        results = [first.result(timeout=5)] + [f.result(timeout=5) for f in rest]
    assert [int(v[0]) for v in results] == [len(t) for t in texts]  # every caller gets its own vector
    assert encoder.passes[0] == [texts[0]]
    assert len(encoder.passes) <= 3 and max(len(p) for p in encoder.passes) >= 4
    assert sorted(t for p in encoder.passes for t in p) == sorted(texts)


def test_a_pass_takes_at_most_max_batch_questions() -> None:
    encoder = SlowEncoder(0.05)
    batcher = QueryBatcher(encoder, max_batch=3)
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(batcher.encode, str(i)) for i in range(10)]
        for f in futures:
            f.result(timeout=5)
    assert max(len(p) for p in encoder.passes) <= 3


def test_a_failed_pass_fails_each_of_its_questions_and_the_next_pass_works() -> None:
    encoder = SlowEncoder(0.0)
    batcher = QueryBatcher(encoder, max_batch=8)
    encoder.fail = True
    with pytest.raises(RuntimeError, match="encoder broke"):
        batcher.encode("x")
    encoder.fail = False
    assert batcher.encode("xy")[0] == 2


def test_callers_from_many_threads_never_get_each_others_vectors() -> None:
    encoder = SlowEncoder(0.001)
    batcher = QueryBatcher(encoder, max_batch=4)
    wrong: list[str] = []

    def ask(n: int) -> None:
        for i in range(20):
            text = "q" * (1 + (n * 20 + i) % 37)
            if int(batcher.encode(text)[0]) != len(text):
                wrong.append(text)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not wrong and batcher.encoded == 120


def test_the_cache_keeps_the_most_recent_entries_and_counts_hits() -> None:
    cache = VectorCache(2)
    for key in ("a", "b"):
        cache.put(key, np.zeros(DIM, np.float32))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", np.ones(DIM, np.float32))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2 and cache.hits == 3 and cache.misses == 1


def test_cached_vectors_are_read_only() -> None:
    cache = VectorCache(4)
    cache.put("a", np.zeros(DIM, np.float32))
    vector = cache.get("a")
    assert vector is not None
    with pytest.raises(ValueError):
        vector[0] = 1.0


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = VectorCache(0)
    cache.put("a", np.zeros(DIM, np.float32))
    assert cache.get("a") is None and len(cache) == 0
