"""Bearer-token check, the Host check and the loopback rule for `hosig serve`.

WHY pure ASGI middlewares (not FastAPI dependencies): every route, including the OpenAPI docs and
404s, must refuse a request without the token or from a foreign Host, and a pure middleware does
not buffer streaming responses the way Starlette's BaseHTTPMiddleware does.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from typing import Any, Awaitable, Callable

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the localhost names; anything else is reachable by others."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class TokenMiddleware:
    """Refuse (401) any HTTP request whose ``Authorization`` header is not ``Bearer <token>``."""

    def __init__(self, app: Callable[..., Awaitable[None]], token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        given = (_header(scope, b"authorization") or "").encode("latin-1")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        problem = {"detail": "missing or wrong token: send 'Authorization: Bearer <token>'", "code": "unauthorized"}
        await _send_json(send, 401, problem, [(b"www-authenticate", b"Bearer")])


def host_name(header: str) -> str:
    """The host part of a ``Host`` header: ``[::1]:8765`` -> ``::1``, ``Localhost:80`` -> ``localhost``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:  # name:port (an unbracketed IPv6 literal has several colons)
        value = value.split(":", 1)[0]
    return value.rstrip(".")


class HostMiddleware:
    """Refuse (421 ``bad_host``) any HTTP request whose ``Host`` is not loopback or allowed.

    The invariant: a page a browser loaded from another site (DNS rebinding: its name now
    resolves to 127.0.0.1) sends its own name as ``Host``, so it never reaches a route. A request
    without ``Host`` is refused too (HTTP/1.1 requires it). ``"*"`` in ``allowed`` turns the check off.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], allowed: Iterable[str] = ()) -> None:
        self.app = app
        self._allowed = {host_name(h) for h in allowed if h.strip()}
        self._any = "*" in self._allowed

    def permits(self, header: str | None) -> bool:
        """True when the Host header names loopback or an allowed host."""
        if header is None:
            return False
        name = host_name(header)
        return bool(name) and (self._any or name in self._allowed or is_loopback(name))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"host")
        if self.permits(header):
            await self.app(scope, receive, send)
            return
        named = repr(header[:100]) if header is not None else "(no Host header)"
        message = (f"Host {named} is not this server's: only loopback names and hosts given with "
                   "hosig serve --allow-host (or $HOSIG_ALLOW_HOSTS) are answered")
        await _send_json(send, 421, {"detail": message, "code": "bad_host"})


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes) in an ASGI scope, or None."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send_json(send: Any, status: int, content: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer with ``content`` as JSON (the error shape every route uses: detail + code)."""
    body = json.dumps(content).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})
