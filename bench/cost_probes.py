"""What a normal user's question costs while hostile clients hammer the server with degenerate ones.

    .venv/bin/python bench/cost_probes.py                      # this checkout
    git worktree add /tmp/before-hardening 84796af             # an older commit, to compare
    .venv/bin/python bench/cost_probes.py --source /tmp/before-hardening --source .
    git worktree remove --force /tmp/before-hardening

The issue: a normal question takes ~35 ms, but degenerate ones (`"的"*1000`, `"\\u0301"*1000`, `"a "*500`,
1000 characters of real Chinese prose) used to cost 15× that, nearly all of it in the encoder. The service
now clips a question to QA_MAX_QUESTION_TOKENS encoder tokens and, under QA_RATE_LIMIT, charges it
1 + tokens // 64 units, refusing an over-budget client with 429 before any work.

For each `--source DIR` (default: this checkout) a server is started from that tree
(`PYTHONPATH=DIR python -m qa.cli serve`, cwd DIR, by bench/common.py) on a free 127.0.0.1 port, serving
this checkout's built index (`--index-dir`, default `index/`; read-only: QA_BUILD_ON_START=0, the model
from `index/models`) with QA_RATE_LIMIT=`--rate` and
QA_RATE_LIMIT_LOCALHOST=1. Every client has its own loopback source address (Linux routes all of
127.0.0.0/8 to lo), so the per-client limit gives each its own budget:

- A, alone: the 30 normal questions (in-domain, test split, evenly spaced by id) and each degenerate
  probe (`--reps` times), one request at a time, every request from a fresh address (127.0.1.x) so the
  limit never triggers; median ms per probe and its ratio to the normal median.
- B, idle: the normal user (127.0.0.10) alone, open loop: one question due every `--interval` s,
  `--questions` of them cycling the normal set; median and p95 ms, timed from when each was due.
- C, hostile: the same paced user while `--hostile` clients (127.0.0.21, .22, ...; threads in a child
  process, so their GIL does not delay the user's timing) send degenerate questions in closed loops,
  ignoring Retry-After, for the user's whole run; the user's median/p95 and its ratio to B, and the
  hostile clients' answers by status.

`--polite`: hostile clients wait out Retry-After (only admitted work, no flood of refusals); `--vary`: every
hostile string differs (defeats per-question caches). The notes under the table also give CPU seconds per
second of the server, of the hostile clients' process and of every other process (above 0.2: a shared,
noisy run).

One markdown table row per tree, then PASS/FAIL for this checkout (else the last tree) against the
target: the normal user's median under hostile load ≤ 1.5 × its idle median. Client and server share the
machine's cores, so numbers move with anything else running. Exit status 0 (a benchmark, not a test),
2 if the index is missing or a server does not start.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Any

import common
import httpx
from common import ROOT, Server, StartupError, markdown_row, markdown_table, percentile

NORMAL_USER = "127.0.0.10"
HOSTILE_BASE = 20  # hostile client i (1-based) binds 127.0.0.(20 + i)
WARMUP_ADDRESS = "127.0.0.2"
TARGET_RATIO = 1.5
REQUEST_TIMEOUT = 20.0  # seconds, every request
READY_TIMEOUT = 180.0
NORMAL_COUNT = 30
CJK = re.compile(r"[\u4e00-\u9fff]")

Status = int | str  # an HTTP status, or the name of the transport error


@dataclass
class Paced:
    """The paced normal user's run: latency of every 200, and every answer's status."""

    ms: list[float] = field(default_factory=list)
    statuses: Counter[Status] = field(default_factory=Counter)
    seconds: float = 0.0
    server_cpu_s: float | None = None
    others_cpu_s: float | None = None  # the machine's busy CPU minus the server's and this process's


@dataclass
class Hostile:
    statuses: Counter[Status] = field(default_factory=Counter)
    ms_by_status: dict[Status, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    client_cpu_s: float = 0.0  # CPU the hostile clients' own process used (it shares the machine)


@dataclass
class TreeResult:
    label: str
    source: Path
    alone: dict[str, float]  # probe name -> median ms ("normal" included)
    alone_notes: list[str]
    alone_others: float | None  # other processes' CPU seconds per second during A
    idle: Paced
    hostile_user: Paced
    hostile: Hostile


# --- what is asked -----------------------------------------------------------------------------------


def prose(chars: int = 1000) -> str:
    """`chars` characters of real Chinese prose: the first corpus file's lines that are mostly sentences."""
    text = ""
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "![" not in line and len(CJK.findall(line)) >= 20:
                text += line.strip()
            if len(text) >= chars:
                return text[:chars]
    return (text * (chars // max(1, len(text)) + 1))[:chars]


def degenerate_probes() -> dict[str, str]:
    return {
        "的×1000": "的" * 1000,
        "U+0301×1000": "\u0301" * 1000,  # combining acute accent
        "a␣×500": "a " * 500,
        "prose×1000": prose(1000),
    }


def normal_questions(count: int = NORMAL_COUNT) -> list[str]:
    """`count` in-domain test-split questions, evenly spaced in id order (the same set for every tree)."""
    from qa.evaluation import QUESTION_FILES, in_split, load_question_files

    pool = load_question_files([str(ROOT / pattern) for pattern in QUESTION_FILES])
    test = sorted((q for q in in_split(pool, "test") if q.in_domain), key=lambda q: q.id)
    step = len(test) / count
    return [test[int(i * step)].question for i in range(count)]


# --- servers -----------------------------------------------------------------------------------------


def tree_label(source: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        return head + (" dirty" if git("status", "--porcelain") else "")
    except (OSError, subprocess.TimeoutExpired):
        return source.name or str(source)


def server_env(rate: str, index_dir: Path) -> dict[str, str]:
    """This checkout's built index, read-only, for every tree; each client address has its own budget."""
    return {
        "QA_INDEX_DIR": str(index_dir),
        "QA_MODEL_CACHE": str(ROOT / "index" / "models"),
        "QA_CORPUS_DIR": str(ROOT / "corpus"),
        "QA_BUILD_ON_START": "0",
        "QA_LOG_LEVEL": "warning",
        "QA_RATE_LIMIT": rate,
        "QA_RATE_LIMIT_LOCALHOST": "1",
    }


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


@dataclass
class CpuMeter:
    """CPU seconds used over a span: by the server, by this process, and by everything else on the machine
    (other people's tests included: a busy neighbour shows here, not only as slower numbers)."""

    pid: int
    t0: float = field(default_factory=time.perf_counter)
    own0: float = field(default_factory=time.process_time)
    server0: float | None = None
    busy0: float | None = None

    def __post_init__(self) -> None:
        self.server0, self.busy0 = cpu_seconds(self.pid), machine_busy_seconds()

    def read(self, elsewhere_s: float = 0.0) -> tuple[float, float | None, float | None]:
        """(seconds, server CPU s, others' CPU s); `elsewhere_s`: CPU of helpers this process did not count."""
        seconds, own = time.perf_counter() - self.t0, time.process_time() - self.own0
        server1, busy1 = cpu_seconds(self.pid), machine_busy_seconds()
        server = None if server1 is None or self.server0 is None else server1 - self.server0
        if busy1 is None or self.busy0 is None or server is None:
            return seconds, server, None
        return seconds, server, max(0.0, busy1 - self.busy0 - server - own - elsewhere_s)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- clients -----------------------------------------------------------------------------------------


def client(url: str, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT, trust_env=False, transport=transport)


def ask(c: httpx.Client, question: str) -> tuple[Status, float]:
    """POST /v1/ask once: (status, ms)."""
    t0 = time.perf_counter()
    try:
        status: Status = c.post("/v1/ask", json={"question": question, "top_k": 5}).status_code
    except httpx.TimeoutException:
        status = "timeout"
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, (time.perf_counter() - t0) * 1000


def fresh_addresses() -> Iterator[str]:
    """127.0.1.1, 127.0.1.2, ... : one budget each under the per-client limit."""
    for n in itertools.count():
        yield f"127.{n // 62500 % 250}.{1 + n // 250 % 250}.{1 + n % 250}"


def median(values: list[float]) -> float:
    return percentile(values, 50)


def phase_alone(url: str, normal: list[str], probes: dict[str, str], reps: int) -> tuple[dict[str, float], list[str]]:
    """Each probe on its own, sequentially, every request from a new address (the limit never triggers)."""
    addresses = fresh_addresses()
    medians: dict[str, float] = {}
    notes: list[str] = []
    sets = {"normal": normal} | {name: [text] * reps for name, text in probes.items()}
    for name, questions in sets.items():
        with client(url, next(addresses)) as c:
            ask(c, questions[0])  # warm-up, not counted
        ms, bad = [], Counter[Status]()
        for question in questions:
            with client(url, next(addresses)) as c:
                status, took = ask(c, question)
            if status == 200:
                ms.append(took)
            else:
                bad[status] += 1
        medians[name] = median(ms)
        if bad:
            notes.append(f"alone, {name}: " + ", ".join(f"{s} ×{n}" for s, n in bad.items()))
    return medians, notes


def paced_user(url: str, questions: list[str], count: int, interval: float, pid: int) -> Paced:
    """Open loop: question k is due at k × interval whatever happened before; latency counts from then."""
    result = Paced()
    lock = threading.Lock()

    def one(c: httpx.Client, question: str, due: float) -> None:
        status, _ = ask(c, question)
        took = (time.perf_counter() - due) * 1000
        with lock:
            result.statuses[status] += 1
            if status == 200:
                result.ms.append(took)

    meter = CpuMeter(pid)
    with client(url, NORMAL_USER) as c, ThreadPoolExecutor(max_workers=8) as pool:
        for k in range(count):
            due = meter.t0 + k * interval
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(one, c, questions[k % len(questions)], due)
    result.seconds, result.server_cpu_s, result.others_cpu_s = meter.read()
    return result


def hostile_main(
    url: str,
    probes: list[str],
    clients: int,
    limit_s: float,
    vary: bool,
    polite: bool,
    started: Event,
    stop: Event,
    out: Queue[Any],
) -> None:
    """Child process: `clients` threads, each its own address, asking degenerate questions back to back
    (with `polite`, sleeping out each 429's Retry-After first)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    deadline = time.perf_counter() + limit_s
    per_client: list[tuple[Counter[Status], dict[Status, list[float]]]] = []
    ready = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        statuses: Counter[Status] = Counter()
        ms: dict[Status, list[float]] = {}
        per_client.append((statuses, ms))
        feed = itertools.cycle(probes[i % len(probes) :] + probes[: i % len(probes)])
        with client(url, f"127.0.0.{HOSTILE_BASE + 1 + i}") as c:
            ready.wait()
            for n in itertools.count():
                if stop.is_set() or time.perf_counter() > deadline:
                    break
                question = next(feed)
                if vary:  # defeat the server's per-question caches: a new string every time
                    question = f"{i}.{n}" + question[len(f"{i}.{n}") :]
                status, took = ask(c, question)
                statuses[status] += 1
                ms.setdefault(status, []).append(took)
                if polite and status == 429:
                    stop.wait(min(10.0, max(0.0, deadline - time.perf_counter())))  # Retry-After is whole seconds

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    started.set()
    for t in threads:
        t.join()
    total: Counter[Status] = Counter()
    merged: dict[Status, list[float]] = {}
    for statuses, ms in per_client:
        total.update(statuses)
        for status, values in ms.items():
            merged.setdefault(status, []).extend(values)
    out.put((dict(total), merged, time.perf_counter() - t0, time.process_time() - cpu0))


def phase_hostile(
    url: str, questions: list[str], probes: dict[str, str], args: argparse.Namespace, pid: int
) -> tuple[Paced, Hostile]:
    ctx = mp.get_context("spawn")
    started, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    limit_s = args.ramp + args.questions * args.interval + 2 * REQUEST_TIMEOUT
    proc = ctx.Process(
        target=hostile_main,
        args=(url, list(probes.values()), args.hostile, limit_s, args.vary, args.polite, started, stop, out),
        daemon=True,
    )
    proc.start()
    try:
        if not started.wait(60):
            raise RuntimeError("hostile clients did not start")
        time.sleep(args.ramp)  # let the load settle before the user starts
        user = paced_user(url, questions, args.questions, args.interval, pid)
        stop.set()
        statuses, ms, seconds, client_cpu = out.get(timeout=REQUEST_TIMEOUT + 30)
        proc.join(10)
    finally:
        stop.set()
        if proc.is_alive():
            proc.kill()
            proc.join()
    if user.others_cpu_s is not None and seconds:  # the hostile process is not "others"
        user.others_cpu_s = max(0.0, user.others_cpu_s - client_cpu / seconds * user.seconds)
    return user, Hostile(Counter(statuses), ms, seconds, client_cpu)


def bench_tree(
    label: str, source: Path, server: Server, normal: list[str], probes: dict[str, str], args: argparse.Namespace
) -> TreeResult:
    with client(server.url, WARMUP_ADDRESS) as c:
        for question in normal[:10]:
            ask(c, question)
    print(f"{label}: A alone ...", file=sys.stderr)
    meter = CpuMeter(server.pid)
    alone, notes = phase_alone(server.url, normal, probes, args.reps)
    seconds, _, others = meter.read()
    alone_others = None if others is None else others / seconds
    print(f"{label}: B idle ({args.questions} × {args.interval:g} s) ...", file=sys.stderr)
    idle = paced_user(server.url, normal, args.questions, args.interval, server.pid)
    print(f"{label}: C hostile ({args.hostile} clients) ...", file=sys.stderr)
    user, hostile = phase_hostile(server.url, normal, probes, args, server.pid)
    return TreeResult(label, source, alone, notes, alone_others, idle, user, hostile)


# --- report ------------------------------------------------------------------------------------------


def num(x: float, fmt: str = ".0f") -> str:
    return "–" if x != x else format(x, fmt)  # NaN: no successful request


def row(r: TreeResult, probe_names: list[str]) -> str:
    base = r.alone["normal"]
    cells = [r.label, num(base)]
    for name in probe_names:
        ms = r.alone[name]
        cells.append(f"{num(ms)} ({num(ms / base, '.1f')}×)")
    idle_med, host_med = median(r.idle.ms), median(r.hostile_user.ms)
    cells.append(f"{num(idle_med)}/{num(percentile(r.idle.ms, 95, nearest_rank=True))}")
    cells.append(f"{num(host_med)}/{num(percentile(r.hostile_user.ms, 95, nearest_rank=True))}")
    cells.append(f"{num(host_med / idle_med, '.2f')}×")
    h = r.hostile.statuses
    other = sum(n for s, n in h.items() if s not in (200, 429))
    cells.append(f"{h[200]}/{h[429]}" + (f" (+{other} other)" if other else ""))
    return markdown_row(cells)


def notes(r: TreeResult) -> list[str]:
    lines = list(r.alone_notes)
    for phase, paced in (("idle", r.idle), ("hostile", r.hostile_user)):
        bad = {s: n for s, n in paced.statuses.items() if s != 200}
        if bad:
            lines.append(f"normal user, {phase}: not 200: " + ", ".join(f"{s} ×{n}" for s, n in bad.items()))
    h = r.hostile
    sent = sum(h.statuses.values())
    parts = [
        f"{s} ×{n} (median {num(median(h.ms_by_status.get(s, [])), '.1f')} ms)"
        for s, n in sorted(h.statuses.items(), key=lambda kv: -kv[1])
    ]
    rate = sent / h.seconds if h.seconds else float("nan")
    lines.append(f"hostile clients: {sent} requests in {h.seconds:.1f} s ({num(rate)}/s): " + ", ".join(parts))
    cpu = [
        f"{phase} {paced.server_cpu_s / paced.seconds:.2f}"
        for phase, paced in (("idle", r.idle), ("hostile", r.hostile_user))
        if paced.server_cpu_s is not None and paced.seconds
    ]
    if h.seconds:
        cpu.append(f"hostile clients' own process {h.client_cpu_s / h.seconds:.2f}")
    if cpu:
        lines.append("CPU seconds per second: server " + ", ".join(cpu))
    others = [(phase, x) for phase, x in (("A", r.alone_others),) if x is not None]
    others += [
        (phase, p.others_cpu_s / p.seconds)
        for phase, p in (("B", r.idle), ("C", r.hostile_user))
        if p.others_cpu_s is not None and p.seconds
    ]
    if others:
        busy = " — the machine was shared, numbers are noisy" if max(x for _, x in others) > 0.2 else ""
        cpu_text = ", ".join(f"{phase} {x:.2f}" for phase, x in others)
        lines.append(f"other processes' CPU seconds per second: {cpu_text}{busy}")
    return [f"- {r.label}: {line}" for line in lines]


def verdict(r: TreeResult) -> str:
    idle, hostile = median(r.idle.ms), median(r.hostile_user.ms)
    ratio = hostile / idle
    target = f"≤ {TARGET_RATIO} × idle median {num(idle, '.1f')} ms = {num(TARGET_RATIO * idle, '.1f')} ms"
    head = f"{r.label}: normal user's median under hostile load {num(hostile, '.1f')} ms, {num(ratio, '.2f')}× idle"
    if ratio <= TARGET_RATIO:
        return f"PASS — {head} ({target})"
    over = (ratio / TARGET_RATIO - 1) * 100 if ratio == ratio else float("nan")
    return f"FAIL — {head}; target {target}, missed by {num(over)} %"


# --- main --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--source", type=Path, action="append", help="source tree to serve from (repeatable; default .)")
    p.add_argument("--rate", default="60/minute", help="QA_RATE_LIMIT for every server (deploy/ uses 60/minute)")
    p.add_argument("--interval", type=float, default=1.25, help="seconds between the normal user's questions")
    p.add_argument("--questions", type=int, default=48, help="questions the normal user asks per phase")
    p.add_argument("--hostile", type=int, default=4, help="hostile clients in phase C")
    p.add_argument("--reps", type=int, default=5, help="phase A: requests per degenerate probe")
    p.add_argument("--ramp", type=float, default=1.0, help="phase C: seconds of hostile load before the user")
    p.add_argument("--vary", action="store_true", help="hostile questions differ in their first characters")
    p.add_argument("--polite", action="store_true", help="hostile clients wait out Retry-After (only admitted load)")
    p.add_argument("--index-dir", type=Path, default=ROOT / "index", help="the built index every server serves")
    args = p.parse_args()
    if not 1 <= args.hostile <= 200:
        p.error("--hostile must be 1..200")
    if args.interval <= 0 or args.questions < 1 or args.reps < 1:
        p.error("--interval, --questions and --reps must be positive")
    return args


def main() -> int:
    args = parse_args()
    sources = [s.resolve() for s in (args.source or [ROOT])]
    for s in sources:
        if not (s / "qa" / "cli.py").is_file():
            print(f"error: {s} is not a source tree of this project (no qa/cli.py)", file=sys.stderr)
            return 2
    if not (args.index_dir / "CURRENT").is_file():
        print(
            f"error: no built index in {args.index_dir}: run `make serve` once (or `.venv/bin/qa build`)",
            file=sys.stderr,
        )
        return 2

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    normal, probes = normal_questions(), degenerate_probes()
    results: list[TreeResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="qa-cost-"))
    env = server_env(args.rate, args.index_dir.resolve())
    try:
        for source in sources:
            label = tree_label(source)
            port = common.free_port()
            log = tmp / f"server-{port}.log"
            with common.start_server(env, port, source=source, log=log, timeout=READY_TIMEOUT) as server:
                print(f"{label}: ready after {server.ready_seconds:.1f} s", file=sys.stderr)
                results.append(bench_tree(label, source, server, normal, probes, args))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return 130
    shutil.rmtree(tmp, ignore_errors=True)  # server logs: kept only when a server failed to start

    names = list(probes)
    mode = (" (varied strings)" if args.vary else "") + (" honouring Retry-After" if args.polite else "")
    print(
        f"**Machine:** {common.machine()}. **Settings:** QA_RATE_LIMIT={args.rate} per client address, "
        f"{len(normal)} normal questions, degenerate probes ×{args.reps} alone; the normal user asks "
        f"{args.questions} questions, one due every {args.interval:g} s; {args.hostile} hostile clients in "
        f"closed loops{mode}; client and server share the CPU.\n"
    )
    head = ["tree", "normal alone ms", *(f"{n} ms (×)" for n in names)]
    head += ["idle median/p95", "hostile median/p95", "ratio", "hostile 200/429"]
    print(markdown_table(head, []))
    for r in results:
        print(row(r, names))
    print()
    for r in results:
        print("\n".join(notes(r)))
    current = next((r for r in results if r.source == ROOT), results[-1])
    print()
    print(verdict(current))
    return 0


if __name__ == "__main__":
    sys.exit(main())
