"""`hosig serve`: run the API under uvicorn with the loopback-or-token rule.

WHY the rule: the server loads files and burns CPU/GPU on request; reachable from other machines it
must not be open. Binding anything but loopback without a token is a usage error (exit 2). Requests
whose Host header is not loopback (or a host given with --allow-host / $HOSIG_ALLOW_HOSTS) are
refused, so a web page cannot reach the server through DNS rebinding.

On SIGTERM/SIGINT the server closes its listening socket, ends every open /generate stream with an
`error` event (code "shutdown") before uvicorn closes the connections, then exits by the signal
(uvicorn re-raises it: status 143 for SIGTERM in a shell, -15 from `subprocess`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from hosig import diskcache
from hosig.api.security import is_loopback
from hosig.errors import UsageError

ALLOW_HOSTS_ENV = "HOSIG_ALLOW_HOSTS"  # comma-separated host names answered besides loopback
THREADS_ENV = "HOSIG_THREADS"  # torch intra-op threads of the server (unset: torch's default)


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    device: str = "cpu"
    queue: int = 4
    smplx_dir: str | None = None
    max_upload_mb: float = 256.0
    model: str | None = None  # motion checkpoint (None = the committed default)
    quality: str = "final"
    log_level: str = "warning"
    allow_hosts: tuple[str, ...] = ()  # Host header names answered besides loopback ("*" = any)
    cache_max_mb: float | None = None  # disk cache cap (None = $HOSIG_CACHE_MAX_MB or 2 GiB)
    threads: int | None = None  # torch intra-op threads (None = $HOSIG_THREADS, else torch's default)


class StoppingServer(uvicorn.Server):
    """uvicorn's server, calling ``on_stop`` as soon as shutdown begins — before uvicorn waits for
    open connections — so streams can end with their last line instead of being cut."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets=None) -> None:  # noqa: ANN001 - uvicorn's signature
        for server in self.servers:  # no new connections from here on
            server.close()
        self._on_stop()
        await super().shutdown(sockets)


def allowed_hosts(options: ServeOptions, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Hosts answered besides loopback: --allow-host, $HOSIG_ALLOW_HOSTS and a specific bind address."""
    env = (os.environ if environ is None else environ).get(ALLOW_HOSTS_ENV, "")
    names = [*options.allow_hosts, *(h.strip() for h in env.split(","))]
    if options.host not in ("0.0.0.0", "::", "") and not is_loopback(options.host):
        names.append(options.host)  # clients of a specific address name it in Host
    return tuple(dict.fromkeys(n for n in names if n))


def torch_threads(options: ServeOptions, environ: dict[str, str] | None = None) -> int | None:
    """The server's torch intra-op threads: --threads, else $HOSIG_THREADS, else None (leave torch's
    default). UsageError unless a whole number >= 1."""
    value: object = options.threads
    if value is None:
        value = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip() or None
        if value is None:
            return None
    try:
        n = int(str(value))
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--threads / ${THREADS_ENV} {value!r} must be a whole number >= 1")
    return n


def apply_threads(n: int | None) -> None:
    """``torch.set_num_threads(n)`` for the whole process (the job worker's torch ops); None: unchanged.

    WHY: on a machine whose cores are shared with other work, torch's default (one thread per core)
    oversubscribes them; one or two threads can then be several times faster (docs/BENCHMARKS.md #20)."""
    if n is None:
        return
    import torch

    torch.set_num_threads(n)


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token (UsageError -> exit 2)."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host!r} is not a loopback address: other machines could reach the server; "
            "give --token T (clients then send 'Authorization: Bearer T') or bind 127.0.0.1"
        )
    if token is not None and len(token) < 8:
        raise UsageError("--token must be at least 8 characters")


def serve(options: ServeOptions) -> None:
    """Load the engine, then serve until interrupted (blocks)."""
    check_bind(options.host, options.token)
    if not (0 <= options.port <= 65535):
        raise UsageError(f"--port {options.port} is outside 0..65535")
    if options.queue < 1:
        raise UsageError(f"--queue {options.queue} must be at least 1")
    if options.device not in ("cpu", "cuda"):
        raise UsageError(f"--device {options.device!r}: use cpu or cuda")
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available on this machine")

    if options.cache_max_mb is not None:
        if not options.cache_max_mb >= 0:
            raise UsageError(f"--cache-max-mb {options.cache_max_mb} must be >= 0")
        os.environ[diskcache.ENV] = repr(float(options.cache_max_mb))  # the grid cache reads it too
    cache_max_bytes = diskcache.max_bytes()  # a bad $HOSIG_CACHE_MAX_MB is a usage error now, not per job
    threads = torch_threads(options)
    apply_threads(threads)

    from hosig.api.app import ServerConfig, create_app
    from hosig.pipeline.engine import Engine, EngineConfig

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    engine = Engine(EngineConfig(smplx_dir=options.smplx_dir, device=options.device, motion_checkpoint=options.model,
                                 quality=options.quality, cache_max_bytes=cache_max_bytes))
    hosts = allowed_hosts(options)
    app = create_app(engine, ServerConfig(token=options.token, allowed_hosts=hosts,
                                          max_upload_bytes=int(options.max_upload_mb * 1024 * 1024), max_queued=options.queue))
    sys.stderr.write(f"hosig serve: http://{options.host}:{options.port} (device {options.device}, queue {options.queue}, "
                     f"token {'required' if options.token else 'off'}, hosts loopback{''.join(', ' + h for h in hosts)}, "
                     f"disk cache cap {cache_max_bytes / 1024**2:.0f} MiB, torch threads {threads or 'default'}); docs at /docs\n")
    sys.stderr.flush()
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level=options.log_level, access_log=False, timeout_graceful_shutdown=3)
    StoppingServer(config, on_stop=app.state.jobs.shutdown).run()
