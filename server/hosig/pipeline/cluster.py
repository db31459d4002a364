"""Shot lists on a Ray cluster: `hosig batch SHOTLIST --ray [auto|ADDRESS]`.

The driver (this process) does everything `hosig.pipeline.batch` does around a shot, through the
same functions: it parses the list, makes each shot's key and skips unchanged shots
(`check_shot`), and writes each clip and the manifest atomically (`record_shot`). Only generating
a clip (`execute_shot`) runs remotely, as one task on a pool of Ray actors.

Invariants:

- Each actor (`ShotWorker`) holds one `Engine`: the body and motion models load once per worker
  (on its first shot), not once per shot. An actor takes one GPU where the cluster has GPUs, else
  ``threads`` CPUs.
- Workers need no shared disk: every scene file (and a ``--model`` checkpoint) goes to the object
  store once, by content; a worker writes it under its cache folder by sha256 and loads it from
  there. The clip comes back as bytes and only the driver writes under ``--out``.
- Torch runs in each worker with the thread count a local batch in the driver would use
  (`torch.get_num_threads()` here, unless given): CPU results depend on the thread count, and with
  the same seed, device and threads a clip's arrays equal the local batch's.
- A shot whose worker process dies is resubmitted to a fresh actor that replaces the dead one, at
  most ``retries`` times; the driver counts the attempts (Ray's own actor restarts and task
  retries are off, so the two layers never multiply), and only then is the shot failed.

This module is the only one that imports Ray, and only when called: `require_ray` turns a missing
install into an error naming the fix.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hosig.atomic import atomic_write_bytes
from hosig.errors import CheckpointError, HosigError, InputError, UsageError
from hosig.pipeline.batch import (
    BatchReport, Shot, ShotResult, check_shot, clip_path_for, execute_shot, load_shot_list, read_manifest, record_shot,
)
from hosig.pipeline.engine import Engine, EngineConfig, default_engine
from hosig.pipeline.scenes import default_cache_dir

INSTALL_HINT = "install the cluster extra: pip install '.[cluster]' (in the hosig source folder)"
# Test hook: "<shot name>:<marker file>" makes a worker process exit hard in that shot, once (the
# marker records that it happened), to prove a lost worker's shot is retried and completes.
EXIT_ONCE_ENV = "HOSIG_CLUSTER_TEST_EXIT_ONCE"
LOST_WORKER_CODE = "worker_lost"


@dataclass(frozen=True)
class ClusterOptions:
    """How to reach the cluster and size the worker pool."""

    address: str = "auto"  # "auto": a running cluster ($RAY_ADDRESS or this node's), else start a local one
    workers: int | None = None  # at most this many actors (None: as many as the cluster fits)
    threads: int | None = None  # torch threads per worker (None: this process's, as a local batch here)
    retries: int = 2  # extra attempts for a shot whose worker died
    num_cpus: int | None = None  # CPUs of a local Ray started here (None: Ray's default, all cores)


@dataclass(frozen=True)
class ShippedFile:
    """A file's bytes in the object store (``box`` holds the ObjectRef, so Ray does not fetch it
    before the worker knows it needs it), named by content."""

    digest: str  # sha256 of the bytes
    name: str  # file name to give it on the worker (keeps the suffix the loaders dispatch on)
    box: tuple[Any, ...]


@dataclass
class _Job:
    index: int
    shot: Shot
    key: str
    scene: ShippedFile
    attempts: int = 0


def require_ray() -> Any:
    """The ``ray`` module, or a UsageError naming the extra to install."""
    try:
        import ray
    except ImportError as err:
        raise UsageError(f"--ray needs Ray, which is not installed ({err}); {INSTALL_HINT}") from None
    return ray


# -- the worker ---------------------------------------------------------------------------------


class ShotWorker:
    """One Ray actor's state: an Engine with its models loaded, shots run one at a time."""

    def __init__(self, config: EngineConfig, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.config = replace(config, cache_dir=default_cache_dir())
        self.engine: Engine | None = None

    def _engine(self, model: tuple[ShippedFile, ShippedFile] | None) -> Engine:
        """The worker's Engine, made and loaded on its first shot (the model files travel with the
        shots, not the constructor, so a restarted actor never depends on constructor objects)."""
        if self.engine is None:
            checkpoint = self.config.motion_checkpoint
            if model is not None:
                folder = self.config.cache_dir / "cluster" / "models" / f"{model[0].digest[:32]}-{model[1].digest[:32]}"
                weights = materialise(folder, model[0])
                materialise(folder, model[1])
                checkpoint = str(weights)
            self.engine = Engine(replace(self.config, motion_checkpoint=checkpoint))
            self.engine.body()
            self.engine.motion()
        return self.engine

    def run(self, shot: Shot, scene: ShippedFile, model: tuple[ShippedFile, ShippedFile] | None) -> tuple[ShotResult, bytes | None]:
        """Generate one shot; (result, clip file bytes or None when it failed)."""
        try:
            engine = self._engine(model)
            path = materialise(self.config.cache_dir / "cluster" / "scenes", scene)
        except HosigError as err:  # e.g. a checkpoint this worker cannot load: the shot fails, as locally
            return ShotResult(shot.name, "failed", error_code=err.code, error=str(err)), None
        local = Shot(shot.name, shot.request.model_copy(update={"scene": str(path)}), shot.fields)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hosig-shot-") as tmp:
            result = execute_shot(local, engine, Path(tmp) / f"{shot.name}.npz")
            data = Path(result.clip).read_bytes() if result.status == "ok" and result.clip else None
        result.elapsed_s = round(time.perf_counter() - t, 3)
        _exit_once_for_test(shot.name)
        return result, data


def materialise(folder: Path, shipped: ShippedFile) -> Path:
    """The shipped file under ``folder`` (fetched from the object store and written atomically on
    first use; a file already there with this name is trusted, as names carry the digest)."""
    path = folder / shipped.name
    if path.is_file():
        return path
    import ray

    data = ray.get(shipped.box[0])
    if hashlib.sha256(data).hexdigest() != shipped.digest:
        raise RuntimeError(f"shipped file {shipped.name!r} arrived damaged (sha256 mismatch)")
    return atomic_write_bytes(path, data)


def _exit_once_for_test(shot_name: str) -> None:
    spec = os.environ.get(EXIT_ONCE_ENV, "")
    name, _, marker = spec.partition(":")
    if name == shot_name and marker and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(17)


# -- the driver ---------------------------------------------------------------------------------


def ship_file(ray: Any, path: Path, name: str | None = None) -> ShippedFile:
    """Put a file's bytes in the object store once; ``name`` defaults to ``<sha256><suffix>``."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return ShippedFile(digest=digest, name=name or f"{digest}{path.suffix.lower()}", box=(ray.put(data),))


def ship_model(ray: Any, config: EngineConfig) -> tuple[ShippedFile, ShippedFile] | None:
    """A ``--model`` checkpoint's weights and config in the object store (None: the committed model,
    which every install of the package has)."""
    if config.motion_checkpoint is None:
        return None
    from hosig.motion.checkpoint import resolve_paths

    weights, doc = resolve_paths(config.motion_checkpoint)
    for path in (weights, doc):
        if not path.is_file():
            raise CheckpointError(f"motion checkpoint file {str(path)!r} does not exist")
    return ship_file(ray, weights, weights.name), ship_file(ray, doc, doc.name)


@contextmanager
def ray_session(ray: Any, address: str, num_cpus: int | None = None) -> Iterator[None]:
    """Connected to Ray for the block: reuse a session already open in this process; else connect
    to ``address`` ("auto": a running cluster, or a local one started here), and disconnect after."""
    if ray.is_initialized():
        yield
        return
    quiet = {"include_dashboard": False, "logging_level": "warning"}
    if address == "auto":
        try:
            ray.init(address="auto", logging_level="warning")
        except ConnectionError:
            ray.init(num_cpus=num_cpus, **quiet)
    else:
        try:
            ray.init(address=address, logging_level="warning")
        except Exception as err:  # noqa: BLE001 - Ray raises several kinds for an unreachable cluster
            raise InputError(f"--ray {address}: cannot connect to a Ray cluster there ({type(err).__name__}: {err})") from None
    try:
        yield
    finally:
        ray.shutdown()


def pool_plan(ray: Any, device: str | None, threads: int) -> tuple[str, dict[str, Any], int]:
    """(device, actor resource options, how many actors the cluster fits): one GPU per actor where
    the cluster has GPUs (unless ``device`` is "cpu"), else ``threads`` CPUs per actor."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    device = device or ("cuda" if gpus else "cpu")
    if device == "cuda":
        if gpus < 1:
            raise UsageError("--device cuda: the Ray cluster has no GPUs; leave --device out to run on CPUs")
        return "cuda", {"num_gpus": 1, "num_cpus": 1}, gpus
    node_cpus = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0)
    if threads > node_cpus:
        raise UsageError(f"--threads {threads}: no Ray node has that many CPUs (largest: {node_cpus}); pass --threads {max(node_cpus, 1)} or fewer")
    return "cpu", {"num_cpus": threads}, max(1, int(resources.get("CPU", 0)) // threads)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def run_batch_ray(
    shot_list: str | Path,
    out_dir: str | Path,
    engine: Engine | None = None,
    options: ClusterOptions | None = None,
    on_shot: Callable[[int, int, Shot, ShotResult | None], None] | None = None,
    force: bool = False,
    device: str | None = None,
) -> BatchReport:
    """`hosig.pipeline.batch.run_batch` with the shots generated on a Ray actor pool. ``engine``
    gives the driver's keys and the workers' settings; ``device`` None picks cuda when the cluster
    has GPUs. ``on_shot(i, n, shot, result)`` is called as each shot finishes (in any order); the
    report lists the shots in the list's order."""
    ray = require_ray()
    options = options or ClusterOptions()
    engine = engine or default_engine()
    shots = load_shot_list(shot_list)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    results: list[ShotResult | None] = [None] * len(shots)
    t_batch = time.perf_counter()

    def finish(index: int, result: ShotResult) -> None:
        results[index] = result
        if on_shot:
            on_shot(index, len(shots), shots[index], result)

    pending: list[tuple[int, Shot, str]] = []
    for i, shot in enumerate(shots):
        key, result = check_shot(shot, out, engine, manifest, force)
        if result is not None:
            finish(i, result)
        else:
            assert key is not None  # check_shot: no result means a key to generate under
            pending.append((i, shot, key))
    if pending:
        with ray_session(ray, options.address, options.num_cpus):
            for job, result, data in _run_pool(ray, pending, engine.config, options, device):
                if data is not None:
                    clip = atomic_write_bytes(clip_path_for(out, job.shot), data)
                    result.clip = str(clip)
                    if result.summary is not None:
                        result.summary["clip"] = str(clip)
                record_shot(out, manifest, job.shot, job.key, result)
                finish(job.index, result)
    report = BatchReport(shots=[r for r in results if r is not None])
    report.elapsed_s = time.perf_counter() - t_batch
    return report


def _run_pool(
    ray: Any, pending: list[tuple[int, Shot, str]], config: EngineConfig, options: ClusterOptions, device: str | None,
) -> Iterator[tuple[_Job, ShotResult, bytes | None]]:
    """Run the pending shots on an actor pool; yield (job, result, clip bytes) as each finishes."""
    threads = options.threads or _torch_threads()
    device, resources, fits = pool_plan(ray, device, threads)
    scenes: dict[str, ShippedFile] = {}
    jobs: deque[_Job] = deque()
    for index, shot, key in pending:
        scene_path = shot.request.scene
        if scene_path not in scenes:
            scenes[scene_path] = ship_file(ray, Path(scene_path))
        jobs.append(_Job(index, shot, key, scenes[scene_path]))
    model = ship_model(ray, config)
    worker_config = replace(config, device=device)
    # Retries are the driver's alone (see the module docstring): no restarts inside Ray.
    actor_class = ray.remote(max_restarts=0, max_task_retries=0, **resources)(ShotWorker)

    def new_actor() -> Any:
        return actor_class.remote(worker_config, threads)

    size = min(len(jobs), fits, options.workers or len(jobs))
    idle = [new_actor() for _ in range(max(1, size))]
    running: dict[Any, tuple[_Job, Any]] = {}
    lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
    try:
        while jobs or running:
            while jobs and idle:
                job, actor = jobs.popleft(), idle.pop()
                job.attempts += 1
                running[actor.run.remote(job.shot, job.scene, model)] = (job, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            job, actor = running.pop(ready[0])
            try:
                result, data = ray.get(ready[0])
            except lost as err:
                ray.kill(actor, no_restart=True)
                idle.append(new_actor())
                if job.attempts <= options.retries:
                    jobs.appendleft(job)
                    continue
                result, data = ShotResult(job.shot.name, "failed", error_code=LOST_WORKER_CODE,
                                          error=f"its worker died in each of {job.attempts} attempts: {type(err).__name__}: {err}"), None
            except ray.exceptions.RayError as err:
                idle.append(actor)
                result, data = ShotResult(job.shot.name, "failed", error_code="internal", error=f"{type(err).__name__}: {err}"), None
            else:
                idle.append(actor)
            yield job, result, data
    finally:
        for actor in idle + [a for _, a in running.values()]:
            ray.kill(actor)
