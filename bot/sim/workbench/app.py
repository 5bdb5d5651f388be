"""The workbench's HTTP routes: the page and the JSON API, as a Starlette app.

``GET /`` assembles the page from ``bot/sim/workbench_static/`` (with the Block Kit CSS);
the ``/api/…`` routes parse the JSON body, call the :class:`~bot.sim.workbench.Workbench`
and answer its result as JSON, or ``{"error": …}`` with the status of a :class:`BadRequest`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot.sim import blockkit
from bot.sim.harness import CHANNEL
from bot.sim.workbench.panels import esc

if TYPE_CHECKING:
    from bot.sim.workbench.state import Workbench

__all__ = ["POLL_MS", "BadRequest", "build_app"]

POLL_MS = 500


class BadRequest(Exception):
    """A request the workbench refuses: the message and the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def build_app(bench: Workbench) -> Starlette:
    """The workbench's Starlette app over `bench`."""

    async def index(request: Request) -> Response:
        page = _static("index.html")
        page = page.replace("/*CSS*/", blockkit.CSS + "\n" + _static("workbench.css"))
        page = page.replace("/*JS*/", _static("workbench.js"))
        page = page.replace("__POLL_MS__", str(POLL_MS))
        page = page.replace("__CHANNEL__", esc(CHANNEL))
        return HTMLResponse(page)

    async def state(request: Request) -> Response:
        try:
            return JSONResponse(await bench.state(request.query_params.get("user")))
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)

    async def command(request: Request) -> Response:
        return await _json_call(request, lambda b: bench.command(b.get("text", ""), b.get("user")))

    async def click(request: Request) -> Response:
        return await _json_call(request, bench.click)

    async def submit(request: Request) -> Response:
        return await _json_call(request, bench.submit)

    async def close(request: Request) -> Response:
        return await _json_call(request, bench.close)

    async def alert(request: Request) -> Response:
        return await _json_call(request, bench.alert)

    async def dismiss(request: Request) -> Response:
        return await _json_call(request, bench.dismiss)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/api/command", command, methods=["POST"]),
            Route("/api/click", click, methods=["POST"]),
            Route("/api/submit", submit, methods=["POST"]),
            Route("/api/close", close, methods=["POST"]),
            Route("/api/alert", alert, methods=["POST"]),
            Route("/api/dismiss", dismiss, methods=["POST"]),
        ]
    )


async def _json_call(request: Request, call: Callable[[dict[str, Any]], Any]) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as err:
        return JSONResponse({"error": f"the body is not JSON: {err}"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    try:
        return JSONResponse(await call(body))
    except BadRequest as err:
        return JSONResponse({"error": str(err)}, status_code=err.status)


def _static(name: str) -> str:
    return (resources.files("bot.sim") / "workbench_static" / name).read_text(encoding="utf-8")
