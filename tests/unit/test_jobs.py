"""Rebuild jobs with a build callable of our own: coalescing, queueing, failures, records on disk, reaping.
No model, no index (fast); every wait is bounded, so a bug fails a test instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from qa.build import BuildResult, Progress, Stage
from qa.errors import StoreUnavailableError
from qa.jobs import FINISHED, Job, JobRunner, JobStage, JobStore, _owner, _start_time, stage_of
from qa.serve.schemas import job_out

TIMEOUT = 5.0  # seconds any wait may take before the test fails
PUT_A = {"op": "put", "doc_id": "a"}
PUT_B = {"op": "put", "doc_id": "b"}
DELETE_C = {"op": "delete", "doc_id": "c"}


class Build:
    """The build a runner calls: records each call's `force`, reports progress, can hold until released,
    can fail; returns a BuildResult naming version v1, v2, ... by call."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.hold = False
        self.release = threading.Event()
        self.failures: list[Exception] = []  # raised by the next builds, in turn
        self.version: str | None = None  # the serving version, as the runner's `version` callable reads it
        self._started = threading.Semaphore(0)

    def __call__(self, force: bool, progress: Progress) -> BuildResult:
        self.calls.append(force)
        progress(Stage.READING, 0, 0)
        progress(Stage.EMBEDDING, 32, 64)
        self._started.release()
        if self.hold and not self.release.wait(TIMEOUT):
            raise TimeoutError("the test never released the build")
        if self.failures:
            raise self.failures.pop(0)
        progress(Stage.EMBEDDING, 64, 64)
        progress(Stage.WRITING, 64, 64)
        self.version = f"v{len(self.calls)}"
        return BuildResult(self.version, changed=True, documents=2, chunks=64, embedded=64, removed=0, seconds=0.01)

    def wait_started(self) -> None:
        assert self._started.acquire(timeout=TIMEOUT), "no build started"


@pytest.fixture
def build() -> Build:
    return Build()


@pytest.fixture
def make_runner(tmp_path: Path, build: Build) -> Iterator[Callable[..., JobRunner]]:
    """Runners on `tmp_path`, all closed afterwards (any held build released first)."""
    made: list[JobRunner] = []

    def make(on_finish: Callable[[Job], None] | None = None) -> JobRunner:
        runner = JobRunner(JobStore(tmp_path), build, lambda: build.version, on_finish)
        made.append(runner)
        return runner

    yield make
    build.release.set()
    for runner in made:
        runner.close(TIMEOUT)


@pytest.fixture
def runner(make_runner: Callable[..., JobRunner]) -> JobRunner:
    return make_runner()


def _idle(runner: JobRunner) -> None:
    assert runner.wait_idle(TIMEOUT), "the runner did not finish its jobs"


def _job(runner: JobRunner, job_id: str) -> Job:
    job = runner.get(job_id)
    assert job is not None
    return job


# Coalescing and queueing


def test_changes_before_a_build_starts_join_one_job(tmp_path: Path, runner: JobRunner, build: Build) -> None:
    build.hold = True
    running = runner.submit("rebuild")
    build.wait_started()  # the runner is busy: what comes now waits for the next build
    first = runner.submit("put", PUT_A)
    second = runner.submit("delete", DELETE_C)
    assert first.id == second.id != running.id
    assert second.state == "queued" and second.kind == "put"  # the job keeps the kind it was created with
    assert second.changes == [PUT_A, DELETE_C]
    on_disk = JobStore(tmp_path).load(second.id)  # recorded before the change is acknowledged
    assert on_disk is not None and on_disk.changes == [PUT_A, DELETE_C]
    build.release.set()
    _idle(runner)
    assert len(build.calls) == 2  # one build for both changes
    assert _job(runner, second.id).state == "succeeded"


def test_a_forced_submission_forces_the_job_it_joins(runner: JobRunner, build: Build) -> None:
    build.hold = True
    runner.submit("rebuild")
    build.wait_started()
    runner.submit("put", PUT_A)
    joined = runner.submit("rebuild", force=True)
    assert joined.force and joined.changes == [PUT_A]
    runner.submit("put", PUT_B)  # a later change without force does not undo it
    build.release.set()
    _idle(runner)
    assert build.calls == [False, True]


def test_a_change_during_a_build_gets_a_new_job_that_runs_after_it(runner: JobRunner, build: Build) -> None:
    build.hold = True
    first = runner.submit("put", PUT_A)
    build.wait_started()
    assert _job(runner, first.id).state == "running"
    second = runner.submit("put", PUT_B)
    assert second.id != first.id and second.state == "queued" and second.changes == [PUT_B]
    assert _job(runner, first.id).changes == [PUT_A]  # the running build never takes a later change
    build.release.set()
    _idle(runner)
    done_first, done_second = _job(runner, first.id), _job(runner, second.id)
    assert done_first.state == done_second.state == "succeeded"
    assert done_first.finished_at is not None and done_second.started_at is not None
    assert datetime.fromisoformat(done_second.started_at) >= datetime.fromisoformat(done_first.finished_at)
    assert done_first.index_version_before is None and done_first.index_version == "v1"
    assert done_second.index_version_before == "v1" and done_second.index_version == "v2"


def test_a_failing_build_marks_its_job_failed_and_the_queue_moves_on(
    tmp_path: Path, runner: JobRunner, build: Build
) -> None:
    build.hold = True
    build.failures = [RuntimeError("disk full")]
    failing = runner.submit("rebuild")
    build.wait_started()
    after = runner.submit("put", PUT_A)
    build.release.set()
    _idle(runner)
    failed = _job(runner, failing.id)
    assert failed.state == "failed" and failed.stage is JobStage.FAILED
    assert failed.error == "RuntimeError: disk full"
    assert failed.finished_at is not None and failed.index_version is None
    assert _job(runner, after.id).state == "succeeded"
    on_disk = JobStore(tmp_path).load(failing.id)
    assert on_disk is not None and on_disk.state == "failed" and on_disk.error == "RuntimeError: disk full"


def test_a_failed_job_reports_a_named_errors_own_message(runner: JobRunner, build: Build) -> None:
    build.failures = [StoreUnavailableError("Milvus at http://milvus:19530 refused the call")]
    job = runner.submit("rebuild")
    _idle(runner)
    assert _job(runner, job.id).error == "Milvus at http://milvus:19530 refused the call"


def test_wait_idle_gives_up_after_its_timeout(runner: JobRunner, build: Build) -> None:
    build.hold = True
    runner.submit("rebuild")
    build.wait_started()
    assert runner.wait_idle(0.05) is False
    build.release.set()
    assert runner.wait_idle(TIMEOUT) is True


def test_a_job_left_queued_at_close_is_run_by_the_runner_that_adopts_it(
    make_runner: Callable[..., JobRunner], build: Build
) -> None:
    build.hold = True
    old = make_runner()
    old.submit("rebuild")
    build.wait_started()
    queued = old.submit("put", PUT_A)
    left = old.close(timeout=0.05)  # the build still runs: close stops waiting for it
    assert left is not None and left.id == queued.id
    with pytest.raises(RuntimeError, match="closed"):
        old.submit("put", PUT_B)
    build.release.set()
    assert old.close(TIMEOUT) is None
    assert len(build.calls) == 1  # the closed runner started nothing more
    new = make_runner()
    new.adopt(left)
    _idle(new)
    assert len(build.calls) == 2
    adopted = _job(new, queued.id)
    assert adopted.state == "succeeded" and adopted.changes == [PUT_A]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failing_on_finish_does_not_stop_the_queue(make_runner: Callable[..., JobRunner]) -> None:
    def on_finish(job: Job) -> None:
        raise ValueError("metrics backend down")

    runner = make_runner(on_finish)
    runner.submit("rebuild")
    assert runner.wait_idle(TIMEOUT)
    later = runner.submit("put", PUT_A)
    assert runner.wait_idle(0.5), "the job thread died: nothing runs any more"
    assert _job(runner, later.id).state == "succeeded"


# Progress


def test_a_running_job_reports_its_builds_progress(runner: JobRunner, build: Build) -> None:
    build.hold = True
    job = runner.submit("rebuild")
    build.wait_started()  # the build has reported embedding 32 of 64
    live = _job(runner, job.id)
    assert live.state == "running" and live.stage is Stage.EMBEDDING
    assert (live.done, live.total, live.chunks_embedded) == (32, 64, 32)
    assert live.fraction == pytest.approx(0.1 + 0.85 * 0.5)
    assert job_out(live).progress.stage == "embedding"
    build.release.set()
    _idle(runner)
    done = _job(runner, job.id)
    assert done.stage is JobStage.DONE and done.fraction == 1.0
    assert (done.done, done.total, done.chunks_embedded, done.documents, done.chunks) == (64, 64, 64, 2, 64)
    assert done.duration_s is not None and done.duration_s >= 0
    assert job_out(done).progress.stage == "done"


def test_on_finish_gets_each_finished_job(make_runner: Callable[..., JobRunner], build: Build) -> None:
    finished: list[Job] = []
    both = threading.Event()

    def on_finish(job: Job) -> None:
        finished.append(job)
        if len(finished) == 2:
            both.set()

    build.failures = [RuntimeError("boom")]
    runner = make_runner(on_finish)
    first = runner.submit("rebuild")
    assert runner.wait_idle(TIMEOUT)
    second = runner.submit("rebuild")
    assert both.wait(TIMEOUT)
    assert [(j.id, j.state) for j in finished] == [(first.id, "failed"), (second.id, "succeeded")]


def test_fraction_never_goes_back_through_a_build() -> None:
    steps: list[tuple[JobStage | Stage, int, int, float]] = [
        (JobStage.QUEUED, 0, 0, 0.0),
        (JobStage.STARTING, 0, 0, 0.0),
        (Stage.WAITING, 0, 0, 0.0),
        (Stage.READING, 0, 0, 0.02),
        (Stage.CHUNKING, 0, 4, 0.02),
        (Stage.CHUNKING, 2, 4, 0.06),
        (Stage.CHUNKING, 4, 4, 0.10),
        (Stage.EMBEDDING, 0, 64, 0.10),
        (Stage.EMBEDDING, 32, 64, 0.525),
        (Stage.EMBEDDING, 64, 64, 0.95),
        (Stage.WRITING, 64, 64, 0.95),
    ]
    fractions = [Job("j", "rebuild", "running", stage=s, done=d, total=t).fraction for s, d, t, _ in steps]
    assert fractions == pytest.approx([f for *_, f in steps])
    assert fractions == sorted(fractions)
    assert Job("j", "rebuild", "succeeded", stage=JobStage.DONE).fraction == 1.0


def test_embedding_nothing_counts_as_embedding_done() -> None:
    assert Job("j", "rebuild", "running", stage=Stage.EMBEDDING, done=0, total=0).fraction == pytest.approx(0.95)


@pytest.mark.parametrize(
    ("word", "stage"),
    [
        ("queued", JobStage.QUEUED),
        ("starting", JobStage.STARTING),
        ("done", JobStage.DONE),
        ("failed", JobStage.FAILED),
        ("waiting for the build lock", Stage.WAITING),
        ("reading corpus", Stage.READING),
        ("chunking", Stage.CHUNKING),
        ("embedding", Stage.EMBEDDING),
        ("writing snapshot", Stage.WRITING),
        ("rebalancing", JobStage.QUEUED),  # a word of another release reads as queued
    ],
)
def test_stage_of_reads_the_words_a_record_holds(word: str, stage: JobStage | Stage) -> None:
    assert stage_of(word) is stage
    assert Job("j", "rebuild", stage=word).stage is stage  # type: ignore[arg-type]


def test_job_and_build_stages_never_share_a_word() -> None:
    assert not {s.value for s in JobStage} & {s.value for s in Stage}


# Records on disk


def test_job_records_survive_a_new_store_on_the_same_directory(
    tmp_path: Path, make_runner: Callable[..., JobRunner], build: Build
) -> None:
    finished: list[Job] = []
    both = threading.Event()

    def on_finish(job: Job) -> None:
        finished.append(job)
        if len(finished) == 2:
            both.set()

    build.failures = [RuntimeError("disk full")]
    runner = make_runner(on_finish)
    runner.submit("put", PUT_A)
    assert runner.wait_idle(TIMEOUT)
    runner.submit("delete", DELETE_C)
    assert both.wait(TIMEOUT)
    store = JobStore(tmp_path)  # another worker, or this server after a restart
    for job in finished:
        assert store.load(job.id) == job  # every field, the stage as an enum again
    assert [j.id for j in store.recent()] == [finished[1].id, finished[0].id]  # newest first
    assert [j.id for j in store.recent(limit=1)] == [finished[1].id]


def _dead_owner() -> str:
    """The owner string of a process that has exited (started, recorded, reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        owner = f"{child.pid}:{_start_time(child.pid)}"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(TIMEOUT)
    return owner


def _record(store: JobStore, job_id: str, state: str, owner: str) -> None:
    store.save(Job(job_id, "put", state, changes=[PUT_A], owner=owner))  # type: ignore[arg-type]


def test_a_job_owned_by_a_dead_process_reads_interrupted_after_reap(tmp_path: Path) -> None:
    store, dead = JobStore(tmp_path), _dead_owner()
    _record(store, "j1-running", "running", dead)
    _record(store, "j2-queued", "queued", dead)
    _record(store, "j3-done", "succeeded", dead)
    _record(store, "j4-mine", "running", _owner())  # this process is alive
    store.reap()
    reread = JobStore(tmp_path)
    states = {j: reread.load(j) for j in ("j1-running", "j2-queued", "j3-done", "j4-mine")}
    assert {j: job.state for j, job in states.items() if job} == {
        "j1-running": "interrupted",
        "j2-queued": "interrupted",
        "j3-done": "succeeded",
        "j4-mine": "running",
    }
    interrupted = states["j1-running"]
    assert interrupted is not None and interrupted.finished_at is not None
    assert interrupted.error is not None and "rebuild" in interrupted.error
    assert interrupted.changes == [PUT_A]  # what it was to apply is still said


@pytest.mark.parametrize("owner", [f"{os.getpid()}:0", "", "not-a-pid"])
def test_a_recycled_pid_or_an_unreadable_owner_does_not_keep_a_job_alive(tmp_path: Path, owner: str) -> None:
    """Same pid, another start time: the pid was reused by a process that is not the job's."""
    store = JobStore(tmp_path)
    _record(store, "j1", "running", owner)
    store.reap()
    job = store.load("j1")
    assert job is not None and job.state == "interrupted"


def test_reap_drops_the_oldest_finished_records_beyond_keep(tmp_path: Path) -> None:
    store = JobStore(tmp_path, keep=2)
    for name, state in [("j0", "succeeded"), ("j1", "running"), ("j2", "failed"), ("j3", "succeeded")]:
        _record(store, name, state, _owner())
    _record(store, "j4", "interrupted", _owner())
    store.reap()
    assert sorted(p.stem for p in store.dir.glob("*.json")) == ["j1", "j3", "j4"]  # j1 still runs: kept
    assert all(j.state in FINISHED or j.id == "j1" for j in store.recent())


@pytest.mark.parametrize("job_id", ["", "../j1", "a/b", "j1.json", "ｊ１", "j 1"])
def test_load_refuses_what_is_not_a_job_id(tmp_path: Path, job_id: str) -> None:
    store = JobStore(tmp_path)
    _record(store, "j1", "queued", _owner())
    assert store.load(job_id) is None


def test_a_corrupt_record_reads_as_no_job(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    _record(store, "j1", "succeeded", _owner())
    (store.dir / "j2.json").write_text("{not json", encoding="utf-8")
    (store.dir / "j3.json").write_text(json.dumps({"id": "j3", "kind": "put", "colour": "red"}), encoding="utf-8")
    assert store.load("j2") is None and store.load("j3") is None
    assert [j.id for j in store.recent()] == ["j1"]


def test_an_empty_store_has_no_jobs(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "never-written")
    assert store.recent() == [] and store.load("j1") is None
    store.reap()  # nothing to tidy, and nothing created
    assert not store.dir.exists()
