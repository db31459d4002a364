"""Job queue: one worker thread runs generation jobs from a bounded queue.

WHY one worker: the motion model saturates the machine (CPU cores or the GPU); running two jobs at
once makes both slower and doubles memory. A bounded queue turns overload into an immediate
`QueueFull` (HTTP 503 + Retry-After) instead of a hang. Each job has a cancel flag, checked by the
pipeline between stages and after every motion window, so a cancelled or abandoned job frees the
worker quickly. Events go to a per-job ``sink`` callable (the HTTP stream); ``None`` ends it.
On shutdown every open job's stream is ended at once with an ``error`` event (code ``shutdown``):
a closed job's sink receives nothing more, whatever the worker is still doing.

Framework-free on purpose (no FastAPI here), so it is tested directly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hosig.pipeline.events import Accepted, Done, Error

log = logging.getLogger("hosig.api.jobs")

Sink = Callable[[Any], None]  # receives events, then None at the end of the job
Runner = Callable[["Job"], Iterator[Any]]


class QueueFull(Exception):
    """The bounded queue has no room; ``retry_after_s`` is a hint for the client."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"server busy: job queue full, retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ShuttingDown(Exception):
    """The server is stopping: no new jobs are taken."""


SHUTDOWN_MESSAGE = "the server is shutting down; the job was stopped (start the server again and retry)"


@dataclass
class Job:
    """One generation request on its way through the queue."""

    request: Any
    sink: Sink
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    cancel_event: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"  # queued | running | finished
    outcome: str | None = None  # when finished: "done", or the error code ("cancelled", "unreachable", ...)
    submitted: float = field(default_factory=time.monotonic)
    closed: bool = False  # the sink has had its final None: nothing more is delivered
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def close(self, event: Any) -> None:
        """Deliver ``event`` as the stream's last line and end the stream (once; later events drop)."""
        self.cancel_event.set()
        with self.lock:
            if self.closed:
                return
            _record_outcome(self, event)
            _send(self, event)
            _send(self, None)
            self.closed = True


class JobQueue:
    """A bounded FIFO of jobs and the single worker thread that drains it."""

    def __init__(self, runner: Runner, max_queued: int = 4) -> None:
        self.runner = runner
        self.max_queued = max(1, int(max_queued))
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=self.max_queued)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._thread: threading.Thread | None = None
        self._mean_job_s = 5.0  # running mean of job durations, for Retry-After
        self.completed = 0
        self._prefetch: Callable[[], Any] | None = None  # idle-time work (latest wins)
        self.prefetched = 0
        self._closing = False  # set by shutdown(): submit refuses

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="hosig-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel everything and end the worker."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel_event.set()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def shutdown(self) -> None:
        """Refuse new jobs and end every queued or running job's stream now with an ``error``
        event (code ``shutdown``); the worker stops at its next cancel check."""
        with self._lock:
            self._closing = True
            self._prefetch = None
            open_jobs = [job for job in self._jobs.values() if job.state != "finished"]
        for job in open_jobs:
            job.close(Error(code="shutdown", message=SHUTDOWN_MESSAGE))

    # -- client side ----------------------------------------------------------------------------
    @property
    def length(self) -> int:
        """Jobs waiting plus the one running."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.state in ("queued", "running"))

    def submit(self, request: Any, sink: Sink) -> Job:
        """Enqueue a job or raise `QueueFull` / `ShuttingDown` at once (never blocks)."""
        job = Job(request=request, sink=sink)
        with self._lock:
            if self._closing:
                raise ShuttingDown("the server is shutting down and takes no new jobs")
            self._jobs[job.id] = job
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._jobs.pop(job.id, None)
            waiting = self._queue.qsize() + 1
            raise QueueFull(max(1, int(round(self._mean_job_s * waiting)))) from None
        return job

    def prefetch(self, work: Callable[[], Any]) -> None:
        """Run ``work`` when the worker is idle (e.g. optimise the grasp of a path just previewed,
        so the generation that usually follows starts streaming at once). Only the latest request
        is kept; real jobs always go first; failures are ignored (the job will report them)."""
        with self._lock:
            self._prefetch = work

    def waiting(self) -> bool:
        """Whether a job is queued (idle-time work stops early for it)."""
        return self._queue.qsize() > 0

    def cancel(self, job_id: str) -> str | None:
        """Flag a job as cancelled; returns its state, or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state != "finished":
                job.cancel_event.set()
            return job.state

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    # -- worker side ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=0.05)
            except queue.Empty:
                with self._lock:
                    work, self._prefetch = self._prefetch, None
                if work is not None:
                    try:
                        work()
                        self.prefetched += 1
                    except Exception as err:  # noqa: BLE001 - best effort only
                        log.info("prefetch failed: %s: %s", type(err).__name__, err)
                continue
            if job is None:
                return
            started = time.monotonic()
            with self._lock:
                job.state = "running"
                self._current = job
            try:
                self._run_one(job)
            finally:
                with self._lock:
                    job.state = "finished"
                    self._current = None
                    self._forget_finished()
                self.completed += 1
                elapsed = time.monotonic() - started
                self._mean_job_s = 0.7 * self._mean_job_s + 0.3 * elapsed
                _deliver(job, None)

    def _run_one(self, job: Job) -> None:
        if job.cancelled():
            _deliver(job, Error(code="cancelled", message="job cancelled before it started"))
            return
        try:
            for event in self.runner(job):
                if isinstance(event, Accepted):  # the server already sent `accepted` at submission
                    continue
                if not _deliver(job, event):
                    job.cancel_event.set()  # nobody listens any more: stop at the next check
        except Exception as err:  # noqa: BLE001 - the worker must survive any job
            log.exception("job %s failed", job.id)
            _deliver(job, Error(code="internal", message=f"{type(err).__name__}: {err}"))

    def _forget_finished(self, keep: int = 256) -> None:
        finished = [k for k, j in self._jobs.items() if j.state == "finished"]
        for key in finished[: max(0, len(finished) - keep)]:
            del self._jobs[key]


def _deliver(job: Job, event: Any) -> bool:
    """Hand an event to the job's sink; False when the sink is gone (client disconnected) or the
    job was closed (shutdown)."""
    with job.lock:
        if job.closed:
            return False
        _record_outcome(job, event)
        if event is None:
            job.closed = True
        return _send(job, event)


def _record_outcome(job: Job, event: Any) -> None:
    if isinstance(event, Error):
        job.outcome = event.code
    elif isinstance(event, Done):
        job.outcome = "done"


def _send(job: Job, event: Any) -> bool:
    try:
        job.sink(event)
        return True
    except Exception:  # noqa: BLE001 - a closed event loop or stream: treat as disconnect
        return False
