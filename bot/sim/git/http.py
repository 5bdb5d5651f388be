"""Git's smart HTTP protocol, served by Git's own `git http-backend` on loopback.

`git http-backend` (shipped with git) is the CGI program real hosts run behind a web
server; here a small ASGI app is that web server. It passes each request to the CGI with
the environment the CGI specification and git-http-backend(1) name (`GIT_PROJECT_ROOT`,
`PATH_INFO`, `QUERY_STRING`, `REQUEST_METHOD`, `CONTENT_TYPE`, `REMOTE_USER`,
`HTTP_CONTENT_ENCODING` for gzipped bodies, `HTTP_GIT_PROTOCOL` for protocol v2) and
answers with what the CGI prints. Clone, fetch and push are the real protocol, end to end.

Authentication is what GitHub and GitLab ask of a token over HTTPS: HTTP Basic, any user
name (`x-access-token`, `oauth2`), the token as the password. Without it, or with another
token, the answer is 401 with `WWW-Authenticate: Basic`, so `git` says "Authentication
failed" as it does against a real host. `requests` records each request (method, path,
user, status), never the credentials. `fail_next(n, status)` refuses the next `n`
requests, as a host that is down does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bot.sim._server import RecordedRequest, ThreadedServer
from bot.sim.git.repo import BareRepo

__all__ = ["GitHttpServer", "git_http_available"]

DEFAULT_TOKEN = "sim-git-token"
MAX_BODY = 64 * 1024 * 1024
_BACKEND = "git-http-backend"


def _backend_path() -> str:
    done = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True)
    return str(Path(done.stdout.strip()) / _BACKEND)


def git_http_available() -> bool:
    """Whether this machine can serve repositories here: `git` on the PATH and its
    `git http-backend` (some distributions ship it apart, e.g. Alpine's git-daemon)."""
    if shutil.which("git") is None:
        return False
    try:
        return os.access(_backend_path(), os.X_OK)
    except (OSError, subprocess.CalledProcessError):
        return False


class GitHttpServer:
    """Bare repositories under `root`, served at `url` + `/<name>.git`."""

    def __init__(self, root: Path, *, token: str = DEFAULT_TOKEN, host: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self._backend = _backend_path()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._failing: list[int] = []
        self._server = ThreadedServer(self._app, host=host, name="git-http", interface="asgi3")

    # ── lifecycle ──

    @property
    def url(self) -> str:
        return self._server.url

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def create_repo(self, name: str, files: dict[str, str], **kwargs: Any) -> BareRepo:
        """A new bare repository `name` served here (see `BareRepo.create`)."""
        return BareRepo.create(self.root / f"{name}.git", files, **kwargs)

    def repo(self, name: str) -> BareRepo:
        return BareRepo(self.root / f"{name}.git")

    def start(self) -> GitHttpServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ── faults and records ──

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests with `status`, as a host that is down."""
        with self._lock:
            self._failing.extend([status] * count)

    def pushes(self) -> list[RecordedRequest]:
        """The receive-pack requests (pushes) that were served."""
        with self._lock:
            return [
                r for r in self.requests if r.path.endswith("/git-receive-pack") and r.status == 200
            ]

    # ── the app ──

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = RecordedRequest(method=method, path=path, at=time.time())
        record.headers = {k: v for k, v in headers.items() if k != "authorization"}
        with self._lock:
            self.requests.append(record)
            forced = self._failing.pop(0) if self._failing else None
        if forced is not None:
            record.status = forced
            await _answer(send, forced, [(b"content-type", b"text/plain")], b"unavailable\n")
            return
        user = self._user(headers.get("authorization"))
        if user is None:
            record.status = 401
            await _answer(
                send,
                401,
                [(b"www-authenticate", b'Basic realm="sim git"'), (b"content-type", b"text/plain")],
                b"Authentication required\n",
            )
            return
        record.user = user
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                record.status = 413
                await _answer(send, 413, [], b"too large\n")
                return
            if not message.get("more_body"):
                break
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(self.root),
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        if "content-encoding" in headers:
            env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
        if "git-protocol" in headers:
            env["HTTP_GIT_PROTOCOL"] = headers["git-protocol"]
        proc = await asyncio.create_subprocess_exec(
            self._backend,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _err = await proc.communicate(bytes(body))
        status, answer_headers, payload = _parse_cgi(out)
        record.status = status
        await _answer(send, status, answer_headers, payload)

    def _user(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        if password != self.token:
            return None
        return user or "token"


def _parse_cgi(out: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    head, sep, body = out.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = out.partition(b"\n\n")
    status = 200
    headers: list[tuple[bytes, bytes]] = []
    for line in head.splitlines():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"status":
            status = int(value.strip().split()[0])
        elif name.strip():
            headers.append((name.strip().lower(), value.strip()))
    return status, headers, body


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [h for h in headers if h[0] != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
