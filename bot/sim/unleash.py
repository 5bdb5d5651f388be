"""An Unleash server simulation: the admin and client API endpoints rollbot uses.

For `rollbot demo` and drills, where the real Unleash (npm, with PostgreSQL) is not around;
the tests that matter run against the real server (tests/integration/adapters/test_unleash.py,
tests/e2e/test_tier2_unleash.py), and this sim answers like it does there:

    POST /api/admin/projects/{project}/features/{flag}/environments/{env}/on|off → 200, no body
    GET  /api/admin/projects/{project}/features/{flag}   → the feature with `environments`
    GET  /api/client/features/{flag}                      → what SDKs are served (`enabled`)

`Authorization: <token>` (no scheme): the admin token for /api/admin, the client token for
/api/client; anything else → 401. Unknown flags → 404 NotFoundError. Like the real server,
the client API trails the admin API by `client_lag` seconds (it is cached per revision).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim._server import ThreadedServer

ADMIN_TOKEN = "*:*.sim-unleash-admin-token"
CLIENT_TOKEN = "default:production.sim-unleash-client-token"


@dataclass
class _Flag:
    name: str
    project: str
    type: str
    created_at: str
    enabled: dict[str, bool] = field(default_factory=dict)
    served: dict[str, tuple[float, bool]] = field(default_factory=dict)  # env → (from, value)


class UnleashSim:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        environments: tuple[str, ...] = ("development", "production"),
        client_lag: float = 0.5,
    ) -> None:
        self.environments = environments
        self.client_lag = client_lag
        self.admin_token = ADMIN_TOKEN
        self.client_token = CLIENT_TOKEN
        self._lock = threading.Lock()
        self._flags: dict[tuple[str, str], _Flag] = {}
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadedServer(self._app(), host=host, port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> UnleashSim:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> UnleashSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ── control ───────────────────────────────────────────────────────────────────────

    def add_flag(
        self,
        key: str,
        *,
        project: str = "default",
        type: str = "kill-switch",
        enabled: bool = False,
    ) -> None:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        with self._lock:
            flag = _Flag(key, project, type, now)
            for env in self.environments:
                flag.enabled[env] = enabled
                flag.served[env] = (0.0, enabled)
            self._flags[(project, key)] = flag

    def enabled(self, key: str, *, project: str = "default", env: str = "production") -> bool:
        with self._lock:
            return self._flags[(project, key)].enabled[env]

    # ── HTTP ──────────────────────────────────────────────────────────────────────────

    def _app(self) -> Starlette:
        base = "/api/admin/projects/{project}/features/{flag}"
        return Starlette(
            routes=[
                Route(base + "/environments/{env}/{switch}", self._switch, methods=["POST"]),
                Route(base, self._feature, methods=["GET"]),
                Route("/api/client/features/{flag}", self._client_feature, methods=["GET"]),
            ]
        )

    def _auth(self, request: Request, token: str) -> Response | None:
        with self._lock:
            self.requests.append((request.method, request.url.path))
        if request.headers.get("authorization") != token:
            return _error(
                401,
                "AuthenticationRequired",
                "You must log in to use Unleash. Your request had no "
                "authorization header, so we could not authorize you.",
            )
        return None

    def _find(self, project: str, name: str) -> _Flag | None:
        return self._flags.get((project, name))

    async def _switch(self, request: Request) -> Response:
        denied = self._auth(request, self.admin_token)
        if denied is not None:
            return denied
        p = request.path_params
        if p["switch"] not in ("on", "off"):
            return _error(404, "NotFoundError", "Not found")
        with self._lock:
            flag = self._find(p["project"], p["flag"])
            if flag is None:
                return _not_found(p["flag"])
            if p["env"] not in flag.enabled:
                return _error(404, "NotFoundError", f"Could not find environment {p['env']}")
            value = p["switch"] == "on"
            flag.enabled[p["env"]] = value
            flag.served[p["env"]] = (time.monotonic() + self.client_lag, value)
        return Response(status_code=200)

    async def _feature(self, request: Request) -> Response:
        denied = self._auth(request, self.admin_token)
        if denied is not None:
            return denied
        p = request.path_params
        with self._lock:
            flag = self._find(p["project"], p["flag"])
            if flag is None:
                return _not_found(p["flag"])
            return JSONResponse(
                {
                    "name": flag.name,
                    "type": flag.type,
                    "project": flag.project,
                    "description": None,
                    "stale": False,
                    "impressionData": False,
                    "createdAt": flag.created_at,
                    "archived": False,
                    "environments": [
                        {
                            "name": env,
                            "enabled": on,
                            "type": env,
                            "sortOrder": i,
                            "strategies": [
                                {
                                    "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, flag.name)),
                                    "name": "flexibleRollout",
                                    "constraints": [],
                                    "parameters": {
                                        "rollout": "100",
                                        "stickiness": "default",
                                        "groupId": flag.name,
                                    },
                                }
                            ]
                            if on
                            else [],
                        }
                        for i, (env, on) in enumerate(flag.enabled.items())
                    ],
                }
            )

    async def _client_feature(self, request: Request) -> Response:
        denied = self._auth(request, self.client_token)
        if denied is not None:
            return denied
        env = self.client_token.split(":", 1)[1].split(".", 1)[0]
        with self._lock:
            flag = self._find("default", request.path_params["flag"])
            if flag is None:
                return _not_found(request.path_params["flag"])
            since, value = flag.served[env]
            if time.monotonic() < since:  # the cached revision SDKs get still has the old one
                value = not value
            return JSONResponse(
                {
                    "name": flag.name,
                    "type": flag.type,
                    "enabled": value,
                    "project": flag.project,
                    "stale": False,
                    "strategies": [],
                    "variants": [],
                    "impressionData": False,
                }
            )


def _error(status: int, name: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"id": str(uuid.uuid4()), "name": name, "message": message}, status_code=status
    )


def _not_found(flag: str) -> JSONResponse:
    return _error(404, "NotFoundError", f"Could not find feature toggle with name {flag}")
