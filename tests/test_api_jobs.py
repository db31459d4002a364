"""The job queue on its own: order, bound (QueueFull), cancellation, worker survival.

The runner here is a small generator of progress events that honours the cancel flag the way the
pipeline does; the queue is what is under test, not a stage.
"""

from __future__ import annotations

import threading
import time

import pytest

from hosig.api.jobs import JobQueue, QueueFull, ShuttingDown
from hosig.pipeline.events import Accepted, Done, Error, Progress


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.finished = threading.Event()

    def __call__(self, event) -> None:
        if event is None:
            self.finished.set()
        else:
            self.events.append(event)


def make_runner(gate: threading.Event | None = None, steps: int = 3):
    started: list[str] = []

    def runner(job):
        started.append(job.request)
        yield Accepted(job_id=job.id)
        if job.request == "boom":
            raise RuntimeError("kaput")
        for i in range(steps):
            if gate is not None:
                while not gate.wait(0.01):
                    if job.cancelled():
                        yield Error(code="cancelled", message="job cancelled")
                        return
            if job.cancelled():
                yield Error(code="cancelled", message="job cancelled")
                return
            yield Progress(stage="motion", fraction=(i + 1) / steps)
        yield Done(summary={"name": job.request})

    return runner, started


def test_jobs_run_in_order_and_accepted_is_not_repeated() -> None:
    runner, started = make_runner()
    q = JobQueue(runner, max_queued=4)
    q.start()
    recs = [Recorder() for _ in range(3)]
    for i, rec in enumerate(recs):
        q.submit(f"job{i}", rec)
    for rec in recs:
        assert rec.finished.wait(5)
        assert [type(e).__name__ for e in rec.events] == ["Progress"] * 3 + ["Done"]
    assert started == ["job0", "job1", "job2"]
    q.stop()


def test_full_queue_raises_at_once_with_retry_hint() -> None:
    gate = threading.Event()
    runner, _ = make_runner(gate)
    q = JobQueue(runner, max_queued=1)
    q.start()
    first = Recorder()
    q.submit("a", first)
    deadline = time.monotonic() + 5
    while q.get(next(iter(q._jobs))).state != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    q.submit("b", Recorder())  # waits behind the running one
    with pytest.raises(QueueFull) as info:
        q.submit("c", Recorder())
    assert info.value.retry_after_s >= 1
    assert q.length == 2
    gate.set()
    assert first.finished.wait(5)
    q.stop()


def test_cancel_running_and_queued_jobs_frees_the_worker() -> None:
    gate = threading.Event()  # never opened: jobs only end by cancellation
    runner, started = make_runner(gate)
    q = JobQueue(runner, max_queued=3)
    q.start()
    running, queued, after = Recorder(), Recorder(), Recorder()
    job_a = q.submit("a", running)
    job_b = q.submit("b", queued)
    assert q.cancel(job_b.id) == "queued"
    assert q.cancel(job_a.id) in ("queued", "running")
    assert running.finished.wait(5) and queued.finished.wait(5)
    assert running.events[-1].code == "cancelled"
    assert queued.events == [Error(code="cancelled", message="job cancelled before it started")]
    gate.set()
    q.submit("c", after)  # the worker is free again: the next job runs to the end
    assert after.finished.wait(5)
    assert isinstance(after.events[-1], Done)
    assert "b" not in started
    assert q.cancel("nope") is None
    q.stop()


def test_a_crashing_job_becomes_an_error_event_and_the_worker_goes_on() -> None:
    runner, _ = make_runner()
    q = JobQueue(runner, max_queued=2)
    q.start()
    bad, good = Recorder(), Recorder()
    q.submit("boom", bad)
    q.submit("fine", good)
    assert bad.finished.wait(5) and good.finished.wait(5)
    assert bad.events[-1].code == "internal" and "kaput" in bad.events[-1].message
    assert isinstance(good.events[-1], Done)
    q.stop()


def test_a_vanished_listener_cancels_its_job() -> None:
    gate = threading.Event()
    gate.set()
    runner, _ = make_runner(gate, steps=50)
    q = JobQueue(runner, max_queued=2)
    q.start()
    calls = []

    def broken_sink(event) -> None:
        calls.append(event)
        raise RuntimeError("event loop closed")

    job = q.submit("x", broken_sink)
    deadline = time.monotonic() + 5
    while q.get(job.id).state != "finished" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.cancelled()
    assert len(calls) < 50  # stopped early instead of running all steps
    q.stop()


def test_finished_jobs_record_their_outcome() -> None:
    runner, _ = make_runner()
    q = JobQueue(runner, max_queued=2)
    q.start()
    ok, bad = Recorder(), Recorder()
    job_ok = q.submit("fine", ok)
    job_bad = q.submit("boom", bad)
    assert ok.finished.wait(5) and bad.finished.wait(5)
    assert (q.get(job_ok.id).state, q.get(job_ok.id).outcome) == ("finished", "done")
    assert q.get(job_bad.id).outcome == "internal"
    q.stop()


def test_prefetch_runs_when_idle_and_never_before_a_queued_job() -> None:
    gate = threading.Event()
    runner, started = make_runner(gate)
    q = JobQueue(runner, max_queued=2)
    q.start()
    done = threading.Event()
    order: list[str] = []
    rec = Recorder()
    q.submit("job", rec)
    q.prefetch(lambda: (order.append("prefetch"), done.set()))
    time.sleep(0.2)
    assert not done.is_set()  # the worker is busy with the job
    order.append("job-released")
    gate.set()
    assert rec.finished.wait(5) and done.wait(5)
    assert order == ["job-released", "prefetch"] and q.prefetched == 1
    q.prefetch(lambda: 1 / 0)  # a failing prefetch is ignored
    time.sleep(0.3)
    after = Recorder()
    q.submit("after", after)
    assert after.finished.wait(5) and isinstance(after.events[-1], Done)
    q.stop()


def test_shutdown_ends_running_and_queued_jobs_with_a_shutdown_error() -> None:
    gate = threading.Event()  # never opened: the first job stays running until cancelled
    runner, started = make_runner(gate)
    q = JobQueue(runner, max_queued=4)
    q.start()
    running, queued = Recorder(), Recorder()
    first = q.submit("first", running)
    q.submit("second", queued)
    while first.state != "running":
        time.sleep(0.01)
    q.shutdown()
    for rec in (running, queued):
        assert rec.finished.wait(5)
        assert rec.events[-1] == Error(code="shutdown", message=rec.events[-1].message)
    with pytest.raises(ShuttingDown):
        q.submit("third", Recorder())
    q.stop(5)
    assert running.events[-1].code == "shutdown"  # the worker's own "cancelled" came after the end: dropped
    assert first.outcome == "shutdown" and started == ["first"]
