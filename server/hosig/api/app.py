"""The HTTP API: a thin typed FastAPI layer over `hosig.pipeline` (wire protocol in ARCHITECTURE.md).

WHY thin: everything a request does is `hosig.pipeline.run`; this module only validates, queues,
streams NDJSON and maps errors to status codes. The engine is loaded once (`Engine`) and kept warm;
one worker thread (`JobQueue`) runs generations so jobs never compete for the cores/GPU.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from hosig import __version__
from hosig.api.jobs import Job, JobQueue, QueueFull, ShuttingDown
from hosig.api.security import HostMiddleware, TokenMiddleware
from hosig.errors import HosigError
from hosig.pipeline.engine import Engine
from hosig.pipeline.events import Accepted, Plan
from hosig.pipeline.request import GenerateRequest, PlanRequest
from hosig.pipeline.prefetch import prefetch_path_sdf
from hosig.pipeline.run import GRASP_NICE, plan_only, run
from hosig.pipeline.scenes import CONTENT_TYPES

log = logging.getLogger("hosig.api")

DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024

# HTTP status for each HosigError code (the JSON body always carries the code and the message).
STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 422,
    "bad_input": 400,
    "unknown_scene": 404,
    "unknown_object": 404,
    "unreachable": 422,
    "infeasible": 422,
    "bad_checkpoint": 500,
    "cancelled": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
}


@dataclass
class ServerConfig:
    """Server policy: token (None = none required), Host names answered besides loopback ("*" =
    any), upload limit, queue bound, warm start."""

    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    max_queued: int = 4
    warm: bool = True
    prefetch_grasp: bool = True  # optimise the grasp of a previewed path while the worker is idle


class Health(BaseModel):
    status: str
    version: str
    device: str
    body_model: str
    model_loaded: bool
    queue_length: int
    quality: str = "final"


class SceneInfo(BaseModel):
    id: str
    objects: list[str]
    floor_z: float
    bounds: list[list[float]] | None = None


class CancelResult(BaseModel):
    job_id: str
    state: str


class JobStatus(BaseModel):
    job_id: str
    state: str  # queued | running | finished
    outcome: str | None  # finished: "done" or the error code (e.g. "cancelled")


class _HTTPProblem(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _problem(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message, "code": code}, headers=headers)


def create_app(engine: Engine | None = None, config: ServerConfig | None = None) -> FastAPI:
    """Build the application (tests call this directly; `hosig serve` runs it under uvicorn)."""
    engine = engine or Engine()
    config = config or ServerConfig()

    def runner(job: Job):
        return run(job.request, cancel=job.cancelled, engine=engine, job_id=job.id, allow_scene_paths=False)

    jobs = JobQueue(runner, max_queued=config.max_queued)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        jobs.start()
        if config.warm:
            try:
                await run_in_threadpool(engine.warm)
            except Exception as err:  # noqa: BLE001 - serve anyway; each job reports the problem itself
                log.warning("could not preload the models (%s: %s); jobs will report it", type(err).__name__, err)
        yield
        jobs.shutdown()  # open streams end with an `error` line (code "shutdown"), then the worker stops
        await run_in_threadpool(jobs.stop, 2.0)

    app = FastAPI(
        title="HOSIG inference server",
        version=__version__,
        description="Scene-aware human-object interaction motion for Blender. Events stream as NDJSON.",
        lifespan=lifespan,
    )
    app.state.engine, app.state.jobs, app.state.config = engine, jobs, config
    if config.token:
        app.add_middleware(TokenMiddleware, token=config.token)
    app.add_middleware(HostMiddleware, allowed=config.allowed_hosts)  # added last = runs first

    @app.exception_handler(HosigError)
    async def _hosig_error(_: Request, err: HosigError) -> JSONResponse:
        return _problem(STATUS_BY_CODE.get(err.code, 400), err.code, str(err))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(err).__name__, err, exc_info=err)
        return _problem(500, "internal", f"{type(err).__name__}: {err}")

    @app.exception_handler(_HTTPProblem)
    async def _http_problem(_: Request, err: _HTTPProblem) -> JSONResponse:
        return _problem(err.status, err.code, err.message, err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        # Echoing the input back could contain NaN (not JSON); send field paths and messages only.
        items = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "invalid")), "type": str(e.get("type", ""))}
            for e in err.errors()
        ]
        fields = [".".join(i["loc"][1:] if i["loc"][:1] == ["body"] else i["loc"]) or "body" for i in items]
        message = "; ".join(f"{f}: {i['msg']}" for f, i in zip(fields, items))
        return JSONResponse(status_code=422, content={"detail": items, "code": "bad_request", "message": message})

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        info = engine.info()
        return Health(status="ok", version=__version__, queue_length=jobs.length, **info)

    @app.post(
        "/scenes",
        response_model=SceneInfo,
        openapi_extra={"requestBody": {"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in CONTENT_TYPES}}},
    )
    async def upload_scene(request: Request) -> SceneInfo:
        """Upload a scene as the raw body (glb, or the add-on's mesh payload); returns its id."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in CONTENT_TYPES:
            raise _HTTPProblem(415, "unsupported_media_type", f"Content-Type {content_type or '(none)'!r} not accepted; use one of {sorted(CONTENT_TYPES)}")
        limit = config.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                raise _HTTPProblem(400, "bad_request", f"Content-Length {declared!r} is not a number") from None
            if declared_n > limit:
                raise _HTTPProblem(413, "too_large", f"scene upload of {declared_n} bytes exceeds the limit of {limit} bytes")
        data = bytearray()
        async for block in request.stream():
            data.extend(block)
            if len(data) > limit:
                raise _HTTPProblem(413, "too_large", f"scene upload exceeds the limit of {limit} bytes")
        def parse() -> SceneInfo:  # parsing and the floor search are CPU work: off the event loop
            scene = engine.scenes.add_bytes(bytes(data), content_type)
            bounds = getattr(scene, "bounds", None)
            return SceneInfo(
                id=scene.content_hash, objects=list(scene.names()), floor_z=float(scene.floor_z),
                bounds=np.asarray(bounds, dtype=float).tolist() if bounds is not None else None,
            )

        return await run_in_threadpool(parse)

    @app.post("/plan", response_model=Plan)
    def plan(req: PlanRequest) -> Plan:
        """Navigation only (the add-on's path preview). When the worker is idle it then optimises
        the grasp at the planned stand point, so a following /generate streams almost at once."""
        event = plan_only(req.scene, req.start, req.target, engine=engine, allow_scene_paths=False)
        if config.prefetch_grasp:
            scene = engine.scenes.get(req.scene, allow_paths=False)
            stand = tuple(float(v) for v in event.stand)

            def warm_up() -> None:
                # what the motion stage's scene term queries, along the path, first steps first
                # (on the worker; a queued job stops it), then the grasp in a low-priority thread
                # that leaves the worker free: a job asking for the same grasp waits for this one
                from hosig.motion.walkfirst import Deferred

                prefetch_path_sdf(scene, req.target, [event], stop=jobs.waiting)
                Deferred(lambda: engine.grasp(scene, req.target, stand, engine.body(), "right"), name="hosig-grasp-prefetch",
                         nice=GRASP_NICE)

            jobs.prefetch(warm_up)
        return event

    @app.post(
        "/generate",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}}, "description": "one event per line"}, 503: {"description": "queue full; see Retry-After"}},
    )
    async def generate(req: GenerateRequest) -> StreamingResponse:
        """Queue a generation and stream its events as NDJSON (first line: `accepted` with the job id)."""
        if req.smplx_dir is not None and req.smplx_dir != engine.config.smplx_dir:
            raise RequestValidationError([{
                "loc": ("body", "smplx_dir"), "msg": "the server uses the body model it was started with (hosig serve --smplx-dir)", "type": "value_error",
            }])
        if isinstance(req.base_clip, str):  # the server reads no files a client names
            raise RequestValidationError([{
                "loc": ("body", "base_clip"), "msg": "send the base clip's frames ({poses, trans, ...}), not a path", "type": "value_error",
            }])
        await run_in_threadpool(engine.scenes.get, req.scene, False)  # unknown id -> 404 before queueing
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        def sink(event: Any) -> None:  # worker thread: serialise there, keep the event loop free
            line = None if event is None else event.to_line()
            loop.call_soon_threadsafe(lines.put_nowait, line)

        try:
            job = jobs.submit(req, sink)
        except QueueFull as full:
            raise _HTTPProblem(503, "busy", str(full), {"Retry-After": str(full.retry_after_s)}) from None
        except ShuttingDown as stopping:
            raise _HTTPProblem(503, "shutdown", str(stopping)) from None

        async def stream():
            finished = False
            try:
                yield Accepted(job_id=job.id).to_line()
                while True:
                    line = await lines.get()
                    if line is None:
                        finished = True
                        return
                    yield line
            finally:
                if not finished:  # client went away (or the server is stopping): free the worker
                    jobs.cancel(job.id)

        return StreamingResponse(stream(), media_type="application/x-ndjson", headers={"X-Job-Id": job.id, "Cache-Control": "no-store"})

    @app.post("/jobs/{job_id}/cancel", response_model=CancelResult)
    async def cancel(job_id: str) -> CancelResult:
        state = jobs.cancel(job_id)
        if state is None:
            raise _HTTPProblem(404, "unknown_job", f"unknown job {job_id!r}")
        return CancelResult(job_id=job_id, state="finished" if state == "finished" else "cancelling")

    @app.get("/jobs/{job_id}", response_model=JobStatus)
    async def job_status(job_id: str) -> JobStatus:
        job = jobs.get(job_id)
        if job is None:
            raise _HTTPProblem(404, "unknown_job", f"unknown job {job_id!r}")
        return JobStatus(job_id=job.id, state=job.state, outcome=job.outcome)

    body_cache: dict[str, dict[str, Any]] = {}

    @app.get("/body")
    def body() -> dict[str, Any]:
        """The rest mesh, skeleton and top-4 skin weights the add-on builds its armature from."""
        model = engine.body()
        if model.identity not in body_cache:
            body_cache[model.identity] = _body_payload(model)
        return body_cache[model.identity]

    return app


def _b64(array: Any, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode("ascii")


def _body_payload(model: Any) -> dict[str, Any]:
    mesh = model.rest_mesh_zup()
    get = (lambda k: mesh[k]) if isinstance(mesh, dict) else (lambda k: getattr(mesh, k))
    hands = getattr(model, "hands_mean", None) or {}
    return {
        # smplx (flat_hand_mean=False) adds these to the streamed hand poses; the rig needs them too
        "hands_mean": {side: np.asarray(hands[side], dtype=float).reshape(-1).tolist() for side in ("left", "right") if side in hands},
        "identity": model.identity,
        "joint_names": list(model.joint_names),
        "parents": [int(p) for p in np.asarray(model.parents)],
        "rest_joints": np.asarray(get("rest_joints"), dtype=float).tolist(),
        "vertices": _b64(get("vertices"), "float32"),
        "faces": _b64(get("faces"), "int32"),
        "weights_index": _b64(get("weights_index"), "int32"),
        "weights_value": _b64(get("weights_value"), "float32"),
    }
