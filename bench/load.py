"""Closed-loop load benchmark for `POST /v1/ask`, optionally with a corpus rebuild in the middle.

Why: to show latency, throughput and memory under steady load, and that answers keep flowing (no
errors, index version switches over) while the admin API rebuilds the index. Prints markdown tables.

Usage: .venv/bin/python bench/load.py [--scenario plain|rebuild|both] [--duration 120] [--concurrency 8]
       [--workers N] [--threads N] [--json out.json]
By default it starts its own server on a copy of corpus/ with a fresh index in a temp dir (~15 s build);
`--url http://127.0.0.1:PORT [--pid PID] [--token TOKEN]` targets a running server instead.
Exit status: 0 pass, 1 errors / failed rebuild job / RSS growth >= 10 %, 2 server did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import common
import httpx
from common import ROOT, StartupError, markdown_table, percentile, rss_mib

QUESTIONS = ROOT / "tests" / "data" / "corpus_qa.jsonl"
TERMINAL = ("succeeded", "failed", "interrupted")
RSS_LIMIT_PCT = 10.0


@dataclass
class Job:
    state: str = "not started"
    seconds: float = 0.0
    chunks_embedded: int | None = None
    index_version: str | None = None
    error: str | None = None


@dataclass
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rss_start_mib: float | None
    rss_end_mib: float | None
    rss_growth_pct: float | None
    versions: dict[str, int]  # index_version -> answers, in first-seen order
    error_kinds: dict[str, int]
    job: Job | None = None

    @property
    def failed(self) -> bool:
        rss_bad = self.rss_growth_pct is not None and self.rss_growth_pct >= RSS_LIMIT_PCT
        return self.errors > 0 or rss_bad or (self.job is not None and self.job.state != "succeeded")


@dataclass
class Target:
    url: str
    pid: int | None
    token: str | None


def load_questions(seed: int) -> list[str]:
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text("utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(questions)
    return questions


async def ask(client: httpx.AsyncClient, question: str) -> tuple[str | None, str | None]:
    """One request: (index_version, None) on success, (None, error kind) otherwise."""
    try:
        r = await client.post("/v1/ask", json={"question": question, "top_k": 5})
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    if r.status_code != 200:
        return None, f"HTTP {r.status_code}"
    try:
        body = r.json()
    except ValueError:
        return None, "body not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("passages"), list):
        return None, "no passages list"
    return body.get("index_version"), None


async def rebuild(client: httpx.AsyncClient, token: str, n: int, timeout: float = 900.0) -> Job:
    """PUT a changed copy of a corpus file through the admin API and poll the job until it ends."""
    source = (sorted((ROOT / "corpus").glob("001_*.txt")) or sorted((ROOT / "corpus").glob("*.txt")))[0]
    text = f"load-test marker {n} {secrets.token_hex(8)}\n" + source.read_text("utf-8")
    auth = {"Authorization": f"Bearer {token}"}
    job, t0 = Job(state="error"), time.perf_counter()
    try:
        r = await client.put(
            f"/v1/documents/load-test-{n}",
            params={"title": "load test"},
            content=text.encode("utf-8"),
            headers=auth | {"Content-Type": "text/plain; charset=utf-8"},
        )
        if r.status_code != 202:
            job.error = f"PUT answered {r.status_code}: {r.text[:200]}"
            return job
        body = r.json()
        while body.get("state") not in TERMINAL and time.perf_counter() - t0 < timeout:
            await asyncio.sleep(0.5)
            r = await client.get(f"/v1/jobs/{body['id']}", headers=auth)
            r.raise_for_status()
            body = r.json()
        job.state = body.get("state", "?")
        job.chunks_embedded, job.index_version, job.error = map(body.get, ("chunks_embedded", "index_version", "error"))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        job.error = f"{type(exc).__name__}: {exc}"
    finally:
        job.seconds = time.perf_counter() - t0
    return job


async def jobs_api(client: httpx.AsyncClient) -> bool:
    paths = (await client.get("/openapi.json")).json().get("paths", {})
    return any(p.startswith("/v1/jobs/") for p in paths)


async def run(name: str, client: httpx.AsyncClient, target: Target, args: argparse.Namespace, n: int) -> Result:
    feed = itertools.cycle(load_questions(args.seed))  # shared by all workers; asyncio is single-threaded
    t0 = time.perf_counter()
    begin, end = t0 + args.warmup, t0 + args.warmup + args.duration
    samples: list[tuple[float, str | None, str | None]] = []  # latency ms, index_version, error kind

    async def worker() -> None:
        while (start := time.perf_counter()) < end:
            version, error = await ask(client, next(feed))
            if start >= begin:
                samples.append(((time.perf_counter() - start) * 1000, version, error))

    workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    rss_start = rss_mib(target.pid)
    job_task = None
    if name == "rebuild" and target.token:
        await asyncio.sleep(args.rebuild_at if args.rebuild_at is not None else args.duration / 3)
        job_task = asyncio.create_task(rebuild(client, target.token, n))
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    rss_end = rss_mib(target.pid)
    await asyncio.gather(*workers)
    seconds = time.perf_counter() - begin
    job = await job_task if job_task else None

    ok_ms = sorted(ms for ms, _, err in samples if err is None)
    errors = Counter(err for _, _, err in samples if err is not None)
    versions = Counter(v for _, v, err in samples if err is None)  # Counter keeps first-seen order
    growth = None if rss_start is None or rss_end is None else (rss_end - rss_start) / rss_start * 100
    p50, p95, p99, top = (percentile(ok_ms, p, nearest_rank=True) for p in (50, 95, 99, 100))
    n_req = len(samples)
    return Result(
        name, n_req, sum(errors.values()), seconds, n_req / seconds, p50, p95, p99, top,
        rss_start, rss_end, growth, dict(versions), dict(errors), job,
    )  # fmt: skip


def table(results: list[Result]) -> str:
    def num(x: float | None, fmt: str = ".1f") -> str:
        return "–" if x is None or x != x else format(x, fmt)  # None or NaN (no successful request)

    head = ["scenario", "requests", "errors", "QPS", "p50 ms", "p95 ms", "p99 ms", "max ms", "RSS start MiB"]
    head += ["RSS end MiB", "RSS growth %", "index versions seen"]
    rows = []
    for r in results:
        versions = ", ".join(f"`{v}` ×{c}" for v, c in r.versions.items()) or "–"
        cells = [r.scenario, str(r.requests), str(r.errors), num(r.qps), num(r.p50_ms, ".0f"), num(r.p95_ms, ".0f")]
        cells += [num(r.p99_ms, ".0f"), num(r.max_ms, ".0f"), num(r.rss_start_mib, ".0f"), num(r.rss_end_mib, ".0f")]
        cells += [num(r.rss_growth_pct), versions]
        rows.append(cells)
    lines = [markdown_table(head, rows)]
    for r in results:
        if r.errors:
            lines.append(f"\n{r.scenario} errors: " + ", ".join(f"{k} ×{c}" for k, c in r.error_kinds.items()))
        if r.job:
            j, changed = r.job, "yes" if len(r.versions) > 1 else "no"
            lines.append(
                f"\nrebuild job: {j.state} in {j.seconds:.1f} s, {j.chunks_embedded or 0} chunks embedded, "
                f"new index `{j.index_version}`; version changed during the run: {changed}"
                + (f"; error: {j.error}" if j.error else "")
            )
    return "\n".join(lines)


async def bench(target: Target, args: argparse.Namespace) -> tuple[list[Result], list[str]]:
    limits = httpx.Limits(max_connections=args.concurrency + 2, max_keepalive_connections=args.concurrency + 2)
    results: list[Result] = []
    notes: list[str] = []
    async with httpx.AsyncClient(base_url=target.url, timeout=30, limits=limits, trust_env=False) as client:
        for n, name in enumerate(["plain", "rebuild"] if args.scenario == "both" else [args.scenario], 1):
            if name == "rebuild" and not await jobs_api(client):
                notes.append("rebuild scenario skipped: the server's /openapi.json has no /v1/jobs/{job_id} route")
                continue
            print(f"running {name}: {args.warmup:g} s warm-up + {args.duration:g} s ...", file=sys.stderr)
            results.append(await run(name, client, target, args, n))
    return results, notes


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=["plain", "rebuild", "both"], default="both")
    p.add_argument("--duration", type=float, default=120.0, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    p.add_argument("--concurrency", type=int, default=8, help="closed-loop client workers")
    p.add_argument("--rebuild-at", type=float, help="seconds into the window to start the rebuild (duration/3)")
    p.add_argument("--workers", type=int, help="QA_WORKERS for the started server")
    p.add_argument("--threads", type=int, help="QA_THREADS for the started server")
    p.add_argument("--seed", type=int, default=0, help="question shuffle seed")
    p.add_argument("--url", help="use this running server instead of starting one")
    p.add_argument("--pid", type=int, help="with --url: server pid, for RSS")
    p.add_argument("--token", help="with --url: admin token, for the rebuild scenario")
    p.add_argument("--json", type=Path, help="also write the raw summary here")
    args = p.parse_args()
    if args.url and args.scenario != "plain" and not args.token:
        p.error("the rebuild scenario needs --token with --url (or use --scenario plain)")
    return args


def server_env(tmp: Path, args: argparse.Namespace, token: str) -> dict[str, str]:
    """A private copy of corpus/ and a fresh index in `tmp`; the converted model is reused, not rebuilt."""
    shutil.copytree(ROOT / "corpus", tmp / "corpus")
    env = {
        "QA_CORPUS_DIR": str(tmp / "corpus"),
        "QA_INDEX_DIR": str(tmp / "index"),
        "QA_MODEL_CACHE": str(ROOT / "index" / "models"),
        "QA_ADMIN_TOKEN": token,
        "QA_LOG_LEVEL": "warning",
    }
    return env | {k: str(v) for k, v in (("QA_THREADS", args.threads), ("QA_WORKERS", args.workers)) if v is not None}


def main() -> int:
    args = parse_args()
    tmp = None
    try:
        with contextlib.ExitStack() as stack:
            if args.url:
                target = Target(args.url.rstrip("/"), args.pid, args.token)
            else:
                tmp = Path(tempfile.mkdtemp(prefix="qa-load-"))
                token = secrets.token_urlsafe(24)
                print(f"building the index in {tmp} ...", file=sys.stderr)
                server = stack.enter_context(
                    common.start_server(
                        server_env(tmp, args, token), common.free_port(), log=tmp / "server.log", timeout=600
                    )
                )
                print(f"server ready after {server.ready_seconds:.1f} s", file=sys.stderr)
                target = Target(server.url, server.pid, token)
            results, notes = asyncio.run(bench(target, args))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        tmp = None  # keep the directory and its log for a post-mortem
        return 2
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    workers, threads = args.workers or "default", args.threads or "default"
    print(
        f"**Machine:** {common.machine()}. **Settings:** concurrency {args.concurrency}, {args.duration:g} s per "
        f"scenario after {args.warmup:g} s warm-up, workers {workers}, threads {threads}; client and server share "
        "the CPU.\n"
    )
    print(table(results))
    for note in notes:
        print(f"\n{note}")
    if args.json:
        summary: dict[str, object] = {
            "machine": common.machine(),
            "args": {k: str(v) for k, v in vars(args).items() if k != "token"},
        }
        summary["results"] = [asdict(r) | {"failed": r.failed} for r in results]
        args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return int(any(r.failed for r in results))


if __name__ == "__main__":
    sys.exit(main())
