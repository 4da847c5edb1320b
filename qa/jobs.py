"""Rebuild jobs: one build at a time, changes coalesce, records survive restarts.

Every admin change is on disk before it is acknowledged; what remains is to
bring the index up to date. Changes that arrive while no build has started yet
join the queued job (one job id for all of them); a change that arrives while a
build runs gets a new queued job that starts when the running one ends, and
reads the corpus afresh. So every acknowledged change is in a build that
started after it. Job records are JSON files under `<index_dir>/jobs/`, written
atomically, so any worker of the server can answer `GET /v1/jobs/{id}`, and a
job whose process died is reported as `interrupted` after a restart.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from qa.build import BuildResult, Progress, Stage
from qa.files import keep_file_mode

log = logging.getLogger(__name__)

State = Literal["queued", "running", "succeeded", "failed", "interrupted"]
Kind = Literal["put", "delete", "rebuild", "startup"]
FINISHED = ("succeeded", "failed", "interrupted")


class JobStage(StrEnum):
    """A job's stage outside its build (inside it, the build's `Stage`)."""

    QUEUED = "queued"
    STARTING = "starting"
    DONE = "done"
    FAILED = "failed"


def stage_of(value: str) -> JobStage | Stage:
    """A stage as a job record spells it (records are JSON): unknown words read as queued."""
    for kind in (JobStage, Stage):
        try:
            return kind(value)
        except ValueError:
            pass
    return JobStage.QUEUED


# The share of a job done when a stage begins; embedding is most of the work.
_SHARE_AT: dict[JobStage | Stage, float] = {Stage.READING: 0.02, Stage.WRITING: 0.95}


@dataclass
class Job:
    id: str
    kind: Kind
    state: State = "queued"
    force: bool = False
    changes: list[dict[str, str]] = field(default_factory=list)
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    stage: JobStage | Stage = JobStage.QUEUED
    done: int = 0
    total: int = 0
    chunks_embedded: int = 0
    documents: int | None = None
    chunks: int | None = None
    index_version_before: str | None = None
    index_version: str | None = None
    error: str | None = None
    owner: str = ""  # "<pid>:<process start time>" of the process that runs it

    def __post_init__(self) -> None:
        self.stage = stage_of(self.stage)  # a record read back from JSON holds the stage's word

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fraction(self) -> float:
        """How far the job is, 0..1, for progress bars: chunking is 2–10 %, embedding 10–95 %."""
        if self.state == "succeeded":
            return 1.0
        if self.stage is Stage.CHUNKING:
            return 0.02 + 0.08 * (self.done / self.total if self.total else 0)
        if self.stage is Stage.EMBEDDING:
            return 0.1 + 0.85 * (self.done / self.total if self.total else 1)
        return _SHARE_AT.get(self.stage, 0.0)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)).total_seconds()


class JobStore:
    """Job records as one JSON file each; written with temp file + rename."""

    def __init__(self, index_dir: Path, keep: int = 200) -> None:
        self.dir = index_dir / "jobs"
        self.keep = keep

    def save(self, job: Job) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".job-", suffix=".tmp", dir=self.dir)
        target = self.dir / f"{job.id}.json"
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            keep_file_mode(fh.fileno(), target)
            json.dump(job.as_dict(), fh)  # ASCII escapes: any text in an error message can be written
        os.replace(tmp, target)

    def load(self, job_id: str) -> Job | None:
        path = self.dir / f"{job_id}.json"
        if not job_id.isascii() or not job_id.replace("-", "").isalnum() or not path.is_file():
            return None
        try:
            return Job(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def recent(self, limit: int = 50) -> list[Job]:
        if not self.dir.is_dir():
            return []
        names = sorted((p.stem for p in self.dir.glob("*.json")), reverse=True)[:limit]
        return [job for name in names if (job := self.load(name)) is not None]

    def reap(self) -> None:
        """Mark jobs of dead processes interrupted; drop the oldest finished records beyond `keep`."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.json")):
            job = self.load(path.stem)
            if job is not None and job.state not in FINISHED and not _alive(job.owner):
                job.state, job.finished_at = "interrupted", _now()
                job.error = "the server stopped before this job finished; the changes are on disk: rebuild to apply"
                self.save(job)
        names = sorted(p.stem for p in self.dir.glob("*.json"))
        for name in names[: max(0, len(names) - self.keep)]:
            job = self.load(name)
            if job is None or job.state in FINISHED:
                (self.dir / f"{name}.json").unlink(missing_ok=True)


Build = Callable[[bool, Progress], BuildResult]


class JobRunner:
    """A worker thread that runs queued jobs one after another."""

    def __init__(
        self,
        store: JobStore,
        build: Build,
        version: Callable[[], str | None],
        on_finish: Callable[[Job], None] | None = None,
    ) -> None:
        self.store = store
        self._build = build
        self._version = version
        self._on_finish = on_finish
        self._owner = _owner()
        self._cond = threading.Condition()
        self._pending: Job | None = None
        self._running: Job | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="qa-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: Kind, change: dict[str, str] | None = None, force: bool = False) -> Job:
        with self._cond:
            if self._stopped:
                raise RuntimeError("job runner is closed")
            job = self._pending
            if job is None:
                job = Job(id=_job_id(), kind=kind, created_at=_now(), owner=self._owner)
                self._pending = job
            if change is not None:
                job.changes.append(change)
            job.force = job.force or force
            self.store.save(job)
            self._cond.notify_all()
            return Job(**job.as_dict())

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            for job in (self._running, self._pending):
                if job is not None and job.id == job_id:
                    return Job(**job.as_dict())
        return self.store.load(job_id)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 60.0) -> Job | None:
        """Stop taking jobs; a build in progress gets `timeout` seconds to finish. If the process ends first,
        the index stays valid and the job reads `interrupted` after the next start. Returns the job still
        queued, if any, so a new runner can adopt it (an app whose lifespan restarts)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            left, self._pending = self._pending, None
            return left

    def adopt(self, job: Job) -> None:
        """Queue a job another runner left behind (its changes are already on disk)."""
        with self._cond:
            if self._pending is None:
                self._pending = job
            else:
                self._pending.changes.extend(job.changes)
                self._pending.force = self._pending.force or job.force
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job, self._pending = self._pending, None
                assert job is not None
                self._running = job
                job.state, job.started_at, job.stage = "running", _now(), JobStage.STARTING
                job.index_version_before = self._safe_version()
                self._save_quietly(job)
            try:
                self._run(job)
            finally:  # whatever happens, the queue moves on and waiters wake up
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
                    self._save_quietly(job)
            if self._on_finish is not None:
                try:
                    self._on_finish(job)
                except Exception:  # a failing observer (metrics) must not stop the queue
                    log.exception("job %s: on_finish failed", job.id)

    def _save_quietly(self, job: Job) -> None:
        try:
            self.store.save(job)
        except Exception:
            log.exception("could not record job %s", job.id)

    def _run(self, job: Job) -> None:
        last_save = 0.0

        def progress(stage: Stage, done: int, total: int) -> None:
            nonlocal last_save
            with self._cond:
                job.stage, job.done, job.total = stage, done, total
                if stage is Stage.EMBEDDING:
                    job.chunks_embedded = done
                now = time.monotonic()
                if now - last_save > 0.5 or stage is not Stage.EMBEDDING:
                    last_save = now
                    self._save_quietly(job)

        try:
            result = self._build(job.force, progress)
        except Exception as exc:
            log.exception("rebuild job %s failed", job.id)
            with self._cond:
                job.state, job.finished_at, job.stage = "failed", _now(), JobStage.FAILED
                job.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return
        with self._cond:
            job.state, job.finished_at, job.stage = "succeeded", _now(), JobStage.DONE
            job.done = job.total = job.chunks_embedded = result.embedded
            job.documents, job.chunks, job.index_version = result.documents, result.chunks, result.version
        log.info(
            "rebuild job %s done: index %s (%d embedded)",
            job.id,
            result.version,
            result.embedded,
            extra={"qa_job": job.id, "qa_seconds": round(result.seconds, 2)},
        )

    def _safe_version(self) -> str | None:
        try:
            return self._version()
        except Exception:
            return None


def _job_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"  # sorts by creation time


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _owner() -> str:
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks since boot
    except (OSError, IndexError):
        return "?"


def _alive(owner: str) -> bool:
    pid_text, _, started = owner.partition(":")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started == "?" or _start_time(pid) == started
