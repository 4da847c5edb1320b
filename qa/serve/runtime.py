"""Everything one running app owns: the service (loaded in the background), the
corpus writer, rebuild jobs, metrics and the rate limiter. One per app, kept in
`app.state.runtime`; nothing is global, so tests can run several apps at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from qa.config import Settings
from qa.documents import CorpusWriter
from qa.errors import IndexNotFoundError, NotReadyError, QAError, StoreUnavailableError
from qa.jobs import Job, JobRunner, JobStore
from qa.serve.metrics import Metrics
from qa.serve.ratelimit import AuthThrottle, RateLimiter
from qa.service import Service
from qa.stores.base import Snapshot

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, service: Service | None = None) -> None:
        self.settings = settings
        self.service = service
        self.error: str | None = None
        self.writer = CorpusWriter(settings.corpus_dir, settings.index_dir)
        self.jobs = JobStore(settings.index_dir, keep=settings.jobs_kept)
        self.metrics = Metrics(self._serving)
        self.limiter = (
            RateLimiter(
                settings.rate_limit,
                settings.rate_limit_storage,
                settings.rate_limit_localhost,
                known_tokens=(settings.admin_token,),
            )
            if settings.rate_limit
            else None
        )
        self.auth_throttle = AuthThrottle(settings.admin_auth_limit, settings.rate_limit_storage)
        self.long_questions = asyncio.Semaphore(settings.max_long_questions)
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()
        self._loading = False
        self._loader: threading.Thread | None = None
        self._carried: Job | None = None
        self._closing = threading.Event()

    def start_loading(self) -> None:
        self._closing.clear()
        self._loading = True
        self._loader = threading.Thread(target=self.load, name="qa-load", daemon=True)
        self._loader.start()

    def load(self) -> None:
        """Load model and index, tidy after a crash, queue a catch-up build; then say ready."""
        try:
            service = self.service or Service(self.settings)
            while True:
                try:
                    service.warm_up()
                    break
                except (IndexNotFoundError, StoreUnavailableError) as exc:
                    # a replica may start before the writer's first build, or while Milvus is still starting:
                    # say why, and begin serving when the index is there
                    self.error = exc.message
                    if self._closing.wait(max(self.settings.poll_seconds, 1.0)):
                        return
            self.error = None
            self.writer.clean_stale()
            try:
                self.jobs.reap()
            except OSError as exc:  # a read-only index volume (a replica): nothing of ours to tidy
                log.warning("could not tidy job records: %s", exc)
            if self.settings.build_on_start and service.is_stale():
                job = self._runner_for(service).submit("startup")
                log.info("the corpus changed since the serving index was built: rebuild job %s queued", job.id)
            self.service = service
            log.info("ready: index %s", service.snapshot().version)
        except QAError as exc:
            self.error = exc.message
            log.error("service failed to start: %s", exc.message)
        except Exception as exc:  # keep the process up so /readyz can say why
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("service failed to start")
        finally:
            self._loading = False

    def ready(self) -> Service:
        if self._loading or self.service is None or self.service.loaded is None:
            raise NotReadyError(self.error or "the model and index are still loading; retry shortly")
        return self.service

    def runner(self) -> JobRunner:
        """The job thread, started on first use (also when no lifespan ran, as under schemathesis)."""
        return self._runner_for(self.ready())

    def _runner_for(self, service: Service) -> JobRunner:
        with self._lock:
            if self._runner is None:
                self._runner = self._new_runner(service)
                if self._carried is not None:
                    self._runner.adopt(self._carried)
                    self._carried = None
            return self._runner

    def _new_runner(self, service: Service) -> JobRunner:
        return JobRunner(
            self.jobs,
            lambda force, progress: service.build(force=force, progress=False, on_progress=progress),
            lambda: service.snapshot().version,
            on_finish=self._job_finished,
        )

    def job(self, job_id: str) -> Job | None:
        """A job's latest state: live if this process runs it, else its record on disk."""
        runner = self._runner
        return runner.get(job_id) if runner is not None else self.jobs.load(job_id)

    def close(self, timeout: float = 30.0) -> None:
        """At shutdown: let a load in progress finish (a thread killed inside torch aborts the process)."""
        self._closing.set()
        if self._loader is not None:
            self._loader.join(timeout)
        with self._lock:
            if self._runner is not None:
                # a lifespan can end and start again (schemathesis' ASGI transport does): the next runner
                # takes over the job still queued here
                self._carried = self._runner.close()
                self._runner = None

    def _job_finished(self, job: Job) -> None:
        self.metrics.observe_job(job)

    def _serving(self) -> Snapshot | None:
        return self.service.loaded if self.service is not None else None
