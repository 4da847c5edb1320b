"""What the bench scripts share: the machine line, markdown tables, percentiles and a started server.

Scripts run as `python bench/<script>.py` from the project root, so this directory is `sys.path[0]` and
`import common` finds this file. Nothing here imports `qa`: bench/ask_latency.py runs this checkout's
script on an older checkout's code (PYTHONPATH), and `start_server` runs whichever source tree it is given.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


# ---------------------------------------------------------------- the machine


def meminfo(key: str) -> int:
    """A /proc/meminfo field in bytes (MemTotal, MemAvailable, ...); 0 where there is no /proc."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cores() -> int:
    """The cores this process may run on (its affinity; a container's limit shows here, not in cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def os_name() -> str:
    pretty = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    kernel = f"{platform.system()} {platform.release()}"
    return f"{pretty}, {kernel}" if pretty else kernel


def machine() -> str:
    """One line for every table header: CPU model, cores, RAM, Python and OS."""
    return (
        f"{cpu_model()}, {cores()} cores, {meminfo('MemTotal') / GIB:.1f} GiB RAM, "
        f"Python {platform.python_version()}, {os_name()}"
    )


# ---------------------------------------------------------------- tables and statistics


def markdown_row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_table(headers: Sequence[object], rows: Iterable[Iterable[object]]) -> str:
    """A GitHub markdown table; `rows=[]` gives the header alone, for scripts that print rows as they go."""
    lines = [markdown_row(headers), "|" + "---|" * len(headers)]
    lines += [markdown_row(r) for r in rows]
    return "\n".join(lines)


def percentile(values: Iterable[float], p: float, *, nearest_rank: bool = False) -> float:
    """The p-th percentile (NaN without values): numpy's linear interpolation, or with `nearest_rank` the
    smallest value with at least p % of the samples at or below it (always a measured value)."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return math.nan
    return float(np.percentile(data, p, method="inverted_cdf" if nearest_rank else "linear"))


def p50_p95(values: Iterable[float], *, nearest_rank: bool = False) -> tuple[float, float]:
    data = list(values)
    return percentile(data, 50, nearest_rank=nearest_rank), percentile(data, 95, nearest_rank=nearest_rank)


def rss_mib(pid: int | None) -> float | None:
    """VmRSS of pid plus all its descendants (uvicorn's worker processes), in MiB."""
    if pid is None:
        return None
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            for children in Path(f"/proc/{p}/task").glob("*/children"):
                todo += [int(c) for c in children.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
    return total_kb / 1024


# ---------------------------------------------------------------- a server of the product


class StartupError(RuntimeError):
    """The server exited before it was ready, or was not ready in time (the message ends with its log)."""


@dataclass(frozen=True)
class Server:
    url: str  # base URL, http://127.0.0.1:<port>
    pid: int  # the `qa serve` process (uvicorn's workers are its children)
    log: Path
    ready_seconds: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def start_server(
    settings_env: Mapping[str, str],
    port: int,
    *,
    source: Path = ROOT,
    log: Path | None = None,
    timeout: float = 300.0,
    stop_timeout: float = 20.0,
) -> Iterator[Server]:
    """Run the product's own entry point, `python -m qa.cli serve` of the tree `source` (cwd and first on
    PYTHONPATH), on 127.0.0.1:`port` with these QA_* variables over the environment; yield once /readyz
    answers 200 (StartupError if the process exits first or `timeout` passes). On exit: SIGTERM, wait
    `stop_timeout`, then SIGKILL whatever is left of its process group. Output goes to `log`."""
    import httpx

    log = log or Path(tempfile.gettempdir()) / f"qa-bench-server-{port}.log"
    path = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, **settings_env, "PYTHONPATH": path, "QA_HOST": "127.0.0.1", "QA_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve"],
            cwd=source,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches uvicorn's workers too
        )
    print(f"server pid {proc.pid} from {source}, log {log}: waiting for {url}/readyz ...", file=sys.stderr)
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise StartupError(f"server exited with status {proc.returncode}; log {log}:\n{log_tail(log)}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet (loading the model, building the index)
            if time.perf_counter() - t0 > timeout:
                raise StartupError(f"server not ready after {timeout:.0f} s; log {log}:\n{log_tail(log)}")
            time.sleep(0.5)
        yield Server(url, proc.pid, log, time.perf_counter() - t0)
    finally:
        stop(proc, stop_timeout)


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group (workers, or a server that hung)
    proc.wait()
