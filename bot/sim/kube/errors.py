"""Failures as the Kubernetes API server answers them: a ``Status`` object with a reason.

``ApiError`` is raised anywhere in the sim (store, patches, selectors, HTTP layer) and turned
into the ``Status`` body and code by the HTTP layer; the helpers below build the errors the
real kube-apiserver returns, word for word, for the cases the sim reproduces.
"""

from __future__ import annotations

from typing import Any

from bot.sim.kube.resources import ResourceType

__all__ = [
    "DEFAULT_MESSAGES",
    "REASONS",
    "ApiError",
    "already_exists",
    "conflict",
    "invalid",
    "not_found",
    "path_not_found",
]


REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
DEFAULT_MESSAGES = {
    401: "Unauthorized",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: simulated failure",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted",
}


class ApiError(Exception):
    """A failure answered as a ``Status`` object."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        f'{rt.group_resource} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'{rt.group_resource} "{name}" already exists',
        reason="AlreadyExists",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def invalid(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> ApiError:
    summary = ", ".join(
        c["message"] if not c.get("field") else f"{c['field']}: {c['message']}" for c in causes[:10]
    )
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(
        422,
        f'{rt.kind}.{rt.group} "{name}" is invalid: {summary}',
        details={"name": name, "group": rt.group, "kind": rt.kind, "causes": causes},
    )


def path_not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", details={})
