"""Faults against a real server process: SIGKILL mid-rebuild, swaps under traffic, several workers.

Each test starts `python -m qa.cli serve` on 127.0.0.1 with a private corpus and index.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import CORPUS, ROOT, free_port, model_cache

pytestmark = pytest.mark.slow

TOKEN = "fault-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
SMALL = "002_ba0bb63e0258bd58"
BIG = "003_9a26cb7cfdeac646"  # ~55 kB, ~200 chunks: a rebuild long enough to kill in the middle


@contextmanager
def server(root: Path, **env: str) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    port = free_port()
    environ = {
        **os.environ,
        "QA_CORPUS_DIR": str(root / "corpus"),
        "QA_INDEX_DIR": str(root / "index"),
        "QA_MODEL_CACHE": str(model_cache()),
        "QA_PORT": str(port),
        "QA_ADMIN_TOKEN": TOKEN,
        "QA_POLL_SECONDS": "0.2",
        "QA_LOG_LEVEL": "warning",
        **env,
    }
    with open(root / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve"],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
            time.sleep(0.2)
        yield client, proc
    finally:
        client.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_job(
    client: httpx.Client, job_id: str, until: tuple[str, ...] = ("succeeded", "failed"), timeout: float = 300
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in until:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def version(client: httpx.Client) -> str:
    return str(client.get("/readyz").json()["index_version"])


def small_corpus(root: Path) -> Path:
    (root / "corpus").mkdir(parents=True)
    shutil.copy2(CORPUS / f"{SMALL}.txt", root / "corpus")
    return root


class Askers:
    """Threads asking questions without pause; every failure and every index_version is kept."""

    QUESTIONS = ("日本财务省在JBIC设立的专门设施", "集体韧性", "对美投资的重点行业", "经济安全同盟")

    def __init__(self, base_url: str, threads: int = 4) -> None:
        self.base_url = base_url
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as c:
            n = i
            while not self._stop.is_set():
                q = self.QUESTIONS[n % len(self.QUESTIONS)]
                n += 1
                try:
                    r = c.post("/v1/ask", json={"question": q, "top_k": 3})
                    if r.status_code != 200 or not r.json()["passages"]:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        self.versions[r.json()["index_version"]] += 1
                except Exception as exc:  # a dropped connection is a failure too
                    self.failures.append(repr(exc))

    def __enter__(self) -> Askers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(90)


def store_state(root: Path, store: str) -> dict:
    """The serving version and every version the store holds, read by another process with the server
    stopped (Milvus Lite allows one process per data directory: this one must not keep it open)."""
    script = (
        "import json, sys; from dataclasses import replace; from pathlib import Path; "
        "from qa.config import Settings; from qa.stores.factory import open_store; "
        "b = open_store(replace(Settings(), index_dir=Path(sys.argv[1]), store=sys.argv[2])); "
        "print(json.dumps({'serving': b.serving(), 'versions': b.versions() if hasattr(b, 'versions') else None}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(root / "index"), store], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# FAISS is killed while embedding; Milvus while writing the new version's collections (the part a kill could
# leave half-done there: the FAISS write is a rename of a finished directory, tested in test_index.py)
@pytest.mark.parametrize(("store", "kill_at"), [("faiss", "embedding"), ("milvus", "writing snapshot")])
def test_sigkill_mid_rebuild_keeps_the_old_index_and_every_acknowledged_document(
    tmp_path: Path, store: str, kill_at: str
) -> None:
    root = small_corpus(tmp_path)
    body = (CORPUS / f"{BIG}.txt").read_bytes()
    with server(root, QA_STORE=store) as (client, proc):
        old = version(client)
        r = client.put(
            "/v1/documents/late-report", params={"title": "迟到的报告"}, content=body, headers={**AUTH, **TEXT}
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 120
        while (job := client.get(f"/v1/jobs/{job_id}", headers=AUTH).json())["progress"]["stage"] != kill_at:
            assert job["state"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.02)
        time.sleep(1.0 if kill_at == "embedding" else 0.3)
        assert client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["state"] == "running"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    # acknowledged = on disk, byte for byte; the pointer never moved; no half-written file in the corpus
    assert (root / "corpus" / "late-report.txt").read_bytes() == body
    assert store_state(root, store)["serving"] == old
    assert not [p for p in (root / "corpus").iterdir() if p.name.startswith(".")]

    with server(root, QA_BUILD_ON_START="0", QA_STORE=store) as (client, _):
        assert version(client) == old  # the previous snapshot serves at once
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        assert job["state"] == "interrupted" and "rebuild" in job["error"]
        assert client.get("/v1/documents/late-report").status_code == 404  # not indexed yet

        # the rebuild is re-runnable, and swaps under concurrent traffic without a failed request
        with Askers(str(client.base_url)) as askers:
            time.sleep(1.0)
            r = client.post("/v1/index/rebuild", headers=AUTH)
            assert r.status_code == 202, r.text
            done = wait_job(client, r.json()["id"])
            assert done["state"] == "succeeded", done
            new = done["index_version"]
            deadline = time.monotonic() + 30
            while askers.versions[new] < 20:
                assert time.monotonic() < deadline and not askers.failures, askers.failures[:3]
                time.sleep(0.1)
        assert askers.failures == []
        assert set(askers.versions) == {old, new}, askers.versions
        assert askers.versions[old] > 0 and askers.versions[new] >= 20
        cited = client.post(
            "/v1/ask", json={"question": "美日经济安全同盟的集体韧性", "doc_ids": ["late-report"], "top_k": 1}
        ).json()
        assert cited["passages"][0]["doc_id"] == "late-report" and cited["passages"][0]["title"] == "迟到的报告"
    if store == "faiss":
        assert not list((root / "index" / "snapshots").glob(".tmp-*"))  # the killed build's temp dir was collected
    else:  # the killed build's half-written collections were dropped
        assert store_state(root, store) == {"serving": new, "versions": [old, new]}


def test_every_worker_picks_up_a_new_snapshot(tmp_path: Path) -> None:
    root = small_corpus(tmp_path)
    with server(root, QA_WORKERS="2") as (client, _):
        old = version(client)

        def by_worker() -> dict[int, str]:
            """The version each worker serves; a worker still loading answers 503 and is asked again."""
            seen: dict[int, str] = {}
            deadline = time.monotonic() + 120
            while len(seen) < 2 and time.monotonic() < deadline:
                with httpx.Client(base_url=client.base_url, timeout=30) as fresh:  # a new connection each time
                    r = fresh.get("/v1/info")
                if r.status_code == 200:
                    seen[r.json()["pid"]] = r.json()["index"]["version"]
                else:
                    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready", r.text
                    time.sleep(0.2)
            return seen

        assert set(by_worker().values()) == {old}
        r = client.put(
            "/v1/documents/worker-note", content="两个进程都应看到这份关于大阪电池厂的说明。", headers={**AUTH, **TEXT}
        )
        assert r.status_code == 202, r.text
        done = wait_job(client, r.json()["id"])  # polled through either worker: job records are shared on disk
        assert done["state"] == "succeeded", done
        time.sleep(0.5)  # > QA_POLL_SECONDS
        seen = by_worker()
        assert len(seen) == 2, "the kernel sent every connection to one worker"
        assert set(seen.values()) == {done["index_version"]}, seen
