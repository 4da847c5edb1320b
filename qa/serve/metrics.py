"""Prometheus metrics: one registry per app (no process globals), read by `/metrics`.

HTTP requests by route and status and their latency come from
prometheus-fastapi-instrumentator; this module adds what only the service
knows: retrieval stage timings, the serving index, and rebuild jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from qa.jobs import Job
from qa.retrieval import Answer
from qa.stores.base import Snapshot

STAGES = ("encode", "dense", "bm25", "fusion", "annotate")
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self, serving: Callable[[], Snapshot | None]) -> None:
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "qa_retrieval_stage_seconds",
            "Time spent in each retrieval stage of /v1/ask",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "qa_answers_total", "Answers given, by whether they were answerable", ["answerable"], registry=self.registry
        )
        self.jobs = Counter(
            "qa_rebuild_jobs_total", "Finished rebuild jobs by final state", ["state"], registry=self.registry
        )
        self.job_seconds = Histogram(
            "qa_rebuild_duration_seconds", "Wall time of rebuild jobs", buckets=JOB_BUCKETS, registry=self.registry
        )
        self.registry.register(IndexCollector(serving))

    def observe_answer(self, answer: Answer) -> None:
        for stage in STAGES:
            if stage in answer.timings:
                self.stage_seconds.labels(stage).observe(answer.timings[stage] / 1000)
        self.answers.labels(str(answer.answerable).lower()).inc()

    def observe_job(self, job: Job) -> None:
        self.jobs.labels(job.state).inc()
        if job.duration_s is not None:
            self.job_seconds.observe(job.duration_s)


class IndexCollector(Collector):
    """The serving snapshot's size and version, read at scrape time."""

    def __init__(self, serving: Callable[[], Snapshot | None]) -> None:
        self.serving = serving

    def collect(self) -> Iterator[Metric]:
        store = self.serving()
        if store is None:
            return
        chunks = GaugeMetricFamily("qa_index_chunks", "Chunks in the serving index")
        chunks.add_metric([], len(store))
        docs = GaugeMetricFamily("qa_index_documents", "Documents in the serving index")
        docs.add_metric([], len(store.documents()))
        info = InfoMetricFamily("qa_index", "The serving index snapshot")
        info.add_metric([], {"version": store.version})
        yield from (chunks, docs, info)
