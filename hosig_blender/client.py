"""HTTP client for the local HOSIG server, stdlib only, no threads (Blender forbids them in add-ons).

Short requests (`/health`, `/body`, `/scenes`, `/plan`, cancel) use `http.client` with a small
timeout: on loopback they take milliseconds. `/generate` is a long NDJSON stream, so it runs on a
non-blocking socket: `NdjsonStream.poll()` reads whatever bytes have arrived, decodes HTTP chunked
framing and returns the complete events, never waiting. A `bpy.app.timers` callback (or a plain
loop in headless code) calls it repeatedly.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8765"


def _closed(sock) -> None:
    """Close ``sock`` if there is one (errors on closing are moot); returns None for the attribute."""
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
    return None


class ServerError(Exception):
    """The server could not be reached or answered with an error; ``code`` follows the protocol."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ServerConfig:
    """Where the server is and how to authenticate."""

    url: str = DEFAULT_URL
    token: str = ""
    timeout_s: float = 10.0

    def address(self) -> tuple[str, int, str]:
        """(host, port, base path); accepts "127.0.0.1:8765" as well as "http://host:port/base"."""
        url = self.url.strip() or DEFAULT_URL
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ServerError("bad_url", f"server URL {self.url!r}: only http:// is supported (local server)")
        return parts.hostname or "127.0.0.1", parts.port or 8765, parts.path.rstrip("/")

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        out = {"Accept": "application/json, application/x-ndjson"}
        if content_type:
            out["Content-Type"] = content_type
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out


def _error_from_body(status: int, body: bytes) -> ServerError:
    """Turn an HTTP error answer into a ServerError with the server's own message when it sent one."""
    message = body.decode("utf-8", "replace").strip()[:500]
    code = "http_error"
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            detail = data.get("detail", data)
            if isinstance(detail, dict):
                code = str(detail.get("code", code))
                message = str(detail.get("message", message))
            elif isinstance(detail, str):
                message = detail
            if "code" in data:
                code = str(data["code"])
            if "message" in data:
                message = str(data["message"])
    except ValueError:
        pass
    if status == 401:
        code = "unauthorized"
    return ServerError(code, f"server answered HTTP {status}: {message}")


def request(config: ServerConfig, method: str, path: str, body: bytes | dict | None = None,
            content_type: str = "application/json", timeout_s: float | None = None) -> Any:
    """One blocking JSON request (loopback, milliseconds). Raises ServerError with a clear message."""
    host, port, base = config.address()
    if isinstance(body, dict):
        body = json.dumps(body).encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s or config.timeout_s)
    try:
        conn.request(method, base + path, body=body, headers=config.headers(content_type if body is not None else None))
        resp = conn.getresponse()
        data = resp.read()
    except (ConnectionError, socket.timeout, OSError) as err:
        raise ServerError("no_server", f"no HOSIG server answers at {host}:{port} ({err}); start it with `hosig serve` or the panel's Start button") from None
    finally:
        conn.close()
    if resp.status >= 400:
        raise _error_from_body(resp.status, data)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        raise ServerError("bad_answer", f"{method} {path}: server answered non-JSON: {data[:200]!r}") from None


def health(config: ServerConfig, timeout_s: float = 2.0) -> dict[str, Any]:
    return request(config, "GET", "/health", timeout_s=timeout_s)


class NdjsonStream:
    """A POST whose answer is an NDJSON stream, read without blocking.

    States: connecting -> sending -> headers -> body -> closed. `poll()` advances as far as the
    socket allows and returns complete events (dicts). Protocol failures and a server that vanishes
    mid-stream become a final synthetic ``{"type": "error", ...}`` event so callers have one path.
    """

    def __init__(self, config: ServerConfig, path: str, payload: dict[str, Any], idle_timeout_s: float = 300.0) -> None:
        self.config = config
        self.idle_timeout_s = idle_timeout_s  # no byte for this long -> the server is considered hung
        self._last_activity = time.monotonic()
        host, port, base = config.address()
        self.host, self.port = host, port
        body = json.dumps(payload).encode("utf-8")
        head = [f"POST {base}{path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in config.headers("application/json").items()]
        self._out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        self._sock: socket.socket | None = None
        self._state = "connecting"
        self._raw = b""  # bytes received, not yet decoded (headers or chunk framing)
        self._lines = b""  # decoded body bytes, not yet a complete line
        self._chunked = False
        self._remaining: int | None = None  # Content-Length left, when not chunked
        self.status: int | None = None
        self.finished = False  # set once a terminal event was returned
        self.saw_terminal = False
        self.bytes_received = 0
        self._connect()

    # -- life cycle -------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as err:
            self._fail_later("no_server", f"cannot resolve server host {self.host!r}: {err}")
            return
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(addr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sock.close()
            self._fail_later("no_server", self._no_server_message(os.strerror(code) if code else "refused"))
            return
        self._sock = sock

    def _no_server_message(self, why: str) -> str:
        return f"no HOSIG server answers at {self.host}:{self.port} ({why}); start it with `hosig serve` or the panel's Start button"

    def _fail_later(self, code: str, message: str) -> None:
        self._state = "failed"
        self._pending_error = {"type": "error", "code": code, "message": message}

    def close(self) -> None:
        self._sock = _closed(self._sock)
        if self._state not in ("failed",):
            self._state = "closed"

    # -- polling ----------------------------------------------------------------------------
    def poll(self, max_bytes: int = 4 << 20) -> list[dict[str, Any]]:
        """Advance without blocking; returns the complete events received since the last call."""
        if self.finished:
            return []
        if self._state == "failed":
            return self._finish([self._pending_error])
        events: list[dict[str, Any]] = []
        try:
            if self._state == "connecting":
                _, writable, _ = select.select([], [self._sock], [], 0)
                if not writable:
                    return []
                err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    return self._finish([{"type": "error", "code": "no_server", "message": self._no_server_message(os.strerror(err))}])
                self._state = "sending"
            if self._state == "sending":
                sent = self._sock.send(self._out)
                self._out = self._out[sent:]
                if self._out:
                    return []
                self._state = "headers"
            got = 0
            while got < max_bytes:
                try:
                    data = self._sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    break
                if not data:
                    return self._finish(events + self._decode(b"", eof=True))
                got += len(data)
                self.bytes_received += len(data)
                self._last_activity = time.monotonic()
                events += self._decode(data, eof=False)
                if self.finished:
                    return events
        except (ConnectionError, OSError) as err:
            events.append({"type": "error", "code": "connection_lost",
                           "message": f"lost the connection to the server at {self.host}:{self.port} mid-stream ({err})"})
            return self._finish(events)
        except ValueError as err:  # JSON or framing
            events.append({"type": "error", "code": "bad_answer", "message": f"server stream is not valid NDJSON: {err}"})
            return self._finish(events)
        if any(e.get("type") in ("done", "error") for e in events):
            return self._finish(events)
        if not events and time.monotonic() - self._last_activity > self.idle_timeout_s:
            events.append({"type": "error", "code": "timeout",
                           "message": f"the server at {self.host}:{self.port} sent nothing for {self.idle_timeout_s:.0f} s; gave up"})
            return self._finish(events)
        return events

    def _finish(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not any(e.get("type") in ("done", "error") for e in events):
            events.append({"type": "error", "code": "connection_lost",
                           "message": f"the server at {self.host}:{self.port} closed the stream before the clip was done (did it stop or crash?)"})
        self.finished = True
        self.close()
        return events

    # -- HTTP framing -----------------------------------------------------------------------
    def _decode(self, data: bytes, eof: bool) -> list[dict[str, Any]]:
        self._raw += data
        if self._state == "headers":
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return []
            head = self._raw[:end].decode("latin-1").split("\r\n")
            self._raw = self._raw[end + 4:]
            try:
                self.status = int(head[0].split()[1])
            except (IndexError, ValueError):
                raise ValueError(f"bad status line {head[0]!r}") from None
            fields = {}
            for line in head[1:]:
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            self._chunked = "chunked" in fields.get("transfer-encoding", "").lower()
            if "content-length" in fields:
                self._remaining = int(fields["content-length"])
            self._state = "body"
        if self._state != "body":
            return []
        body = b""
        if self._chunked:
            while True:
                line_end = self._raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self._raw[:line_end].split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self._raw = b""
                    eof = True
                    break
                if len(self._raw) < line_end + 2 + size + 2:
                    break
                body += self._raw[line_end + 2:line_end + 2 + size]
                self._raw = self._raw[line_end + 2 + size + 2:]
        else:
            body, self._raw = self._raw, b""
            if self._remaining is not None:
                self._remaining -= len(body)
                eof = eof or self._remaining <= 0
        if self.status is not None and self.status >= 400:
            self._lines += body
            if eof:
                err = _error_from_body(self.status, self._lines)
                return [{"type": "error", "code": err.code, "message": err.message}]
            return []
        self._lines += body
        events = []
        while True:
            nl = self._lines.find(b"\n")
            if nl < 0:
                break
            line, self._lines = self._lines[:nl].strip(), self._lines[nl + 1:]
            if line:
                events.append(json.loads(line))
        if eof and self._lines.strip():
            events.append(json.loads(self._lines))
            self._lines = b""
        if eof:
            self._state = "eof"
            return self._finish(events)
        return events



class JsonPost:
    """A POST of a large body (the scene upload) answered by one JSON object, without blocking.

    `poll()` sends at most ``max_send`` bytes and reads what has arrived; it returns the decoded
    answer once complete, else None. Errors (no server, HTTP error, bad answer) raise ServerError.
    """

    def __init__(self, config: ServerConfig, path: str, body: bytes, content_type: str, timeout_s: float = 120.0) -> None:
        host, port, base = config.address()
        self.host, self.port = host, port
        head = [f"POST {base}{path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in config.headers(content_type).items()]
        self._out = memoryview(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.total = len(self._out)
        self.sent = 0
        self._raw = b""
        self._deadline = time.monotonic() + timeout_s
        self._sock: socket.socket | None = None
        self._connected = False
        self._connect()

    def _message(self, why: str) -> str:
        return f"no HOSIG server answers at {self.host}:{self.port} ({why}); start it with `hosig serve` or the panel's Start button"

    def _connect(self) -> None:
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        except OSError as err:
            raise ServerError("no_server", f"cannot resolve server host {self.host!r}: {err}") from None
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(addr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sock.close()
            raise ServerError("no_server", self._message(os.strerror(code) if code else "refused"))
        self._sock = sock

    def close(self) -> None:
        self._sock = _closed(self._sock)

    def poll(self, max_send: int = 1 << 18) -> Any:
        """Advance without blocking: send <= ``max_send`` bytes, read the answer; the answer or None."""
        if self._sock is None:
            raise ServerError("cancelled", "the upload was closed")
        if time.monotonic() > self._deadline:
            self.close()
            raise ServerError("timeout", f"the server at {self.host}:{self.port} did not take the scene in time")
        try:
            if not self._connected:
                _, writable, _ = select.select([], [self._sock], [], 0)
                if not writable:
                    return None
                err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.close()
                    raise ServerError("no_server", self._message(os.strerror(err)))
                self._connected = True
            if self.sent < self.total:
                if self._raw or select.select([self._sock], [], [], 0)[0]:
                    return self._receive()  # answered before taking the whole body (413 too large, 401 ...)
                try:
                    self.sent += self._sock.send(self._out[self.sent:self.sent + max_send])
                except (BlockingIOError, InterruptedError):
                    pass
                return None
            return self._receive()
        except (ConnectionError, OSError) as err:
            answer = self._late_answer()  # raises the server's own error when it sent one before resetting
            self.close()
            if answer is not None:
                return answer
            raise ServerError("connection_lost", f"lost the connection to the server at {self.host}:{self.port} during the upload ({err})") from None

    def _late_answer(self) -> Any:
        """After a reset: an answer the server sent before closing (it refused the body early and
        closed with the rest unread), decoded or raised as its ServerError; None when there is none."""
        if self._sock is None:
            return None
        try:
            while True:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                self._raw += data
        except OSError:
            pass
        if self._raw.find(b"\r\n\r\n") < 0:
            return None
        try:
            return self._answer(eof=True)
        except ServerError as err:
            if err.code == "connection_lost":  # half an answer: the reset is the better message
                return None
            raise

    def _receive(self) -> Any:
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return self._answer(eof=False)
            if not data:
                return self._answer(eof=True)
            self._raw += data

    def _answer(self, eof: bool) -> Any:
        """The decoded JSON answer once the whole response is in (Content-Length or EOF), else None."""
        end = self._raw.find(b"\r\n\r\n")
        if end < 0:
            if eof:
                self.close()
                raise ServerError("connection_lost", f"the server at {self.host}:{self.port} closed the upload without an answer")
            return None
        head = self._raw[:end].decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        body = self._raw[end + 4:]
        length = int(fields["content-length"]) if "content-length" in fields else None
        if (length is None and not eof) or (length is not None and len(body) < length):
            if eof:
                self.close()
                raise ServerError("connection_lost", f"the server at {self.host}:{self.port} cut its answer short")
            return None
        self.close()
        try:
            status = int(head[0].split()[1])
        except (IndexError, ValueError):
            raise ServerError("bad_answer", f"bad status line {head[0]!r}") from None
        body = body[:length] if length is not None else body
        if status >= 400:
            raise _error_from_body(status, body)
        try:
            return json.loads(body) if body else {}
        except ValueError:
            raise ServerError("bad_answer", f"upload: server answered non-JSON: {body[:200]!r}") from None
