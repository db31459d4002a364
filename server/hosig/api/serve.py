"""`hosig serve`: run the API under uvicorn with the loopback-or-token rule.

WHY the rule: the server loads files and burns CPU/GPU on request; reachable from other machines it
must not be open. Binding anything but loopback without a token is a usage error (exit 2).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from hosig.api.security import is_loopback
from hosig.errors import UsageError


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

    import uvicorn

    from hosig.api.app import ServerConfig, create_app
    from hosig.pipeline.engine import Engine, EngineConfig

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    engine = Engine(EngineConfig(smplx_dir=options.smplx_dir, device=options.device, motion_checkpoint=options.model, quality=options.quality))
    app = create_app(engine, ServerConfig(token=options.token, max_upload_bytes=int(options.max_upload_mb * 1024 * 1024), max_queued=options.queue))
    sys.stderr.write(f"hosig serve: http://{options.host}:{options.port} (device {options.device}, queue {options.queue}, "
                     f"token {'required' if options.token else 'off'}); docs at /docs\n")
    sys.stderr.flush()
    uvicorn.run(app, host=options.host, port=options.port, log_level=options.log_level, access_log=False, timeout_graceful_shutdown=3)
