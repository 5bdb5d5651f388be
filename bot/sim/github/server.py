"""`GitHubSim`: the GitHub sim's HTTP server. It owns the ASGI app (REST routes and the
GraphQL endpoint), serves it on loopback through the shared `ThreadedServer`, and wraps
every endpoint in what GitHub does before one runs: the fault switches, authentication,
the API version header, the JSON body. Every request, refused ones too, is recorded as a
shared `RecordedRequest` with the token left out. The test hooks (a person approving on
the web page, CI reporting a status) are plain methods.

The data and the rules are in `model`, the JSON shapes in `render`; the package docstring
(`bot.sim.github`) describes what the sim serves.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim._server import RecordedRequest, ServedSim, ThreadedServer
from bot.sim.git import BareRepo
from bot.sim.github.model import (
    DOCS,
    GitHubError,
    GitHubState,
    GraphQLError,
    Protection,
    Pull,
    Repo,
    User,
    node_id,
)
from bot.sim.github.render import V2022, VERSIONS, Renderer

__all__ = ["DEFAULT_TOKEN", "GitHubSim"]

DEFAULT_TOKEN = "sim-github-token"
GRAPHQL_DOCS = "https://docs.github.com/graphql"

Handler = Callable[[Request, Any, User, str], Awaitable[Response]]

_MUTATION = re.compile(r"\b(mutation|query|subscription)\b")
_FIRST_FIELD = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)")


class GitHubSim(ServedSim):
    """GitHub's REST API (and one GraphQL mutation) on a loopback port, over real bare
    repositories. Pass `url` as githubkit's `base_url`."""

    def __init__(
        self,
        *,
        repos: dict[str, BareRepo],
        token: str = DEFAULT_TOKEN,
        login: str = "rollbot",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self._state = GitHubState(repos, login=login)
        self._lock = self._state.lock
        self._render = Renderer(self._state)
        self._requests: list[RecordedRequest] = []
        self._failing: list[int] = []
        self._losing: list[int] = []
        self._server = ThreadedServer(self._build_app(), host=host, port=port, name="github")
        self._render.url = self.url
        self._started = False

    # ── test hooks: what people and CI do on GitHub ──

    def protect(
        self, repo: str, branch: str, *, approvals: int = 1, checks: Iterable[str] = ("ci",)
    ) -> None:
        """Classic branch protection on `branch`: `approvals` approving reviews by someone
        other than the author, and the status `checks` successful on the head commit."""
        with self._lock:
            self._repo(repo).protection[branch] = Protection(approvals, tuple(checks))
            self._state.settle()

    def approve(self, repo: str, number: int, user: str) -> None:
        """`user` approves the pull request's current head (refused for its author, as
        GitHub refuses "Can not approve your own pull request")."""
        with self._lock:
            found = self._repo(repo)
            pull = self._state.pull(found, number)
            if user.lower() == pull.user.login.lower():
                raise ValueError("Can not approve your own pull request")
            self._state.user(user)
            pull.approvals[user] = found.head_sha(pull)
            self._state.settle()

    def set_status(self, repo: str, sha: str, context: str, state: str) -> None:
        """A commit status (`error`, `failure`, `pending`, `success`) for `sha`, as CI
        posts it."""
        if state not in ("error", "failure", "pending", "success"):
            raise ValueError(f"a commit status is error|failure|pending|success, not {state!r}")
        with self._lock:
            self._repo(repo).statuses.setdefault(sha, {})[context] = state
            self._state.settle()

    def allow_auto_merge(self, repo: str, allowed: bool = True) -> None:
        with self._lock:
            self._repo(repo).allow_auto_merge = allowed

    # ── fault switches ──

    def fail_next(self, n: int = 1, status: int = 502) -> None:
        """Answer the next `n` requests with `status` (GitHub's "Server Error" body) before
        doing anything."""
        with self._lock:
            self._failing.extend([status] * n)

    def clear_faults(self) -> None:
        """Forget the failures and lost answers not served yet: GitHub answers again."""
        with self._lock:
            self._failing.clear()
            self._losing.clear()

    def lose_next(self, n: int = 1, status: int = 502) -> None:
        """Do the next `n` requests, then answer `status` instead of the result: the change
        is made, the caller never learns it (a gateway timing out after the backend)."""
        with self._lock:
            self._losing.extend([status] * n)

    # ── inspection ──

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        """The pull request as GET …/pulls/{number} answers it (API version 2022-11-28)."""
        with self._lock:
            found = self._repo(repo)
            return self._render.pull(found, self._state.pull(found, number), V2022)

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._repo(repo)
            return [self._render.pull(found, p, V2022) for p in found.pulls.values()]

    def comments(self, repo: str, number: int) -> list[str]:
        with self._lock:
            found = self._repo(repo)
            return [c.body for c in self._state.pull(found, number).comments]

    def _repo(self, full_name: str) -> Repo:
        owner, _, name = full_name.partition("/")
        try:
            return self._state.repo(owner, name)
        except GitHubError:
            raise KeyError(full_name) from None

    # ── the app ──

    def _build_app(self) -> Starlette:
        w = self._wrap
        r = "/repos/{owner}/{repo}"
        return Starlette(
            routes=[
                Route(r, w(self._get_repo), methods=["GET"]),
                Route(f"{r}/pulls", w(self._list_pulls), methods=["GET"]),
                Route(f"{r}/pulls", w(self._create_pull), methods=["POST"]),
                Route(f"{r}/pulls/{{number:int}}", w(self._get_pull), methods=["GET"]),
                Route(f"{r}/pulls/{{number:int}}/merge", w(self._merge), methods=["PUT"]),
                Route(f"{r}/issues/{{number:int}}/labels", w(self._labels), methods=["POST"]),
                Route(f"{r}/issues/{{number:int}}/comments", w(self._comment), methods=["POST"]),
                Route("/graphql", w(self._graphql, graphql=True), methods=["POST"]),
                Route(
                    "/{path:path}",
                    w(self._not_found),
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ]
        )

    def _wrap(self, handler: Handler, *, graphql: bool = False) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            at = time.time()
            raw = await request.body()
            body: Any = None
            bad_json = False
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body, bad_json = raw.decode(errors="replace"), True
            user: User | None = None
            with self._lock:
                forced = self._failing.pop(0) if self._failing else None
            version = request.headers.get("x-github-api-version") or V2022
            if forced is not None:
                response: Response = JSONResponse({"message": "Server Error"}, status_code=forced)
            else:
                try:
                    user = self._authenticate(request)
                    if user is None:
                        raise GitHubError(
                            401, "Bad credentials", docs=GRAPHQL_DOCS if graphql else DOCS
                        )
                    if version not in VERSIONS:
                        raise GitHubError(
                            400,
                            f"Unsupported 'X-GitHub-Api-Version' header: '{version}'. "
                            f"Supported versions are: {', '.join(VERSIONS)}",
                            docs=f"{DOCS}/overview/api-versions",
                        )
                    if bad_json:
                        raise GitHubError(400, "Problems parsing JSON")
                    response = await handler(request, body, user, version)
                except GitHubError as e:
                    response = JSONResponse(e.body(), status_code=e.status)
                with self._lock:
                    lost = self._losing.pop(0) if self._losing else None
                if lost is not None:
                    response = JSONResponse({"message": "Server Error"}, status_code=lost)
            response.headers["x-github-api-version-selected"] = version
            response.headers["x-github-request-id"] = f"SIM:{len(self._requests) + 1}"
            auth = request.headers.get("authorization", "")
            headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "cookie"}
            if auth:
                headers["authorization"] = auth.partition(" ")[0] + " <redacted>"
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.url.path,
                        query=list(request.query_params.multi_items()),
                        headers=headers,
                        body=body,
                        raw=raw,
                        at=at,
                        status=response.status_code,
                        user=user.login if user else None,
                        response_headers=dict(response.headers),
                        response=_answer(response),
                    )
                )
            return response

        return endpoint

    def _authenticate(self, request: Request) -> User | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not value:
            return None
        if not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            return None
        return self._state.bot

    # ── REST endpoints ──

    def _repo_of(self, request: Request) -> Repo:
        return self._state.repo(request.path_params["owner"], request.path_params["repo"])

    def _pull_of(self, request: Request) -> tuple[Repo, Pull]:
        repo = self._repo_of(request)
        return repo, self._state.pull(repo, int(request.path_params["number"]))

    async def _get_repo(self, request: Request, body: Any, user: User, version: str) -> Response:
        with self._lock:
            self._state.settle()
            return JSONResponse(self._render.full_repository(self._repo_of(request)))

    async def _list_pulls(self, request: Request, body: Any, user: User, version: str) -> Response:
        q = request.query_params
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise GitHubError(
                422,
                "Validation Failed",
                docs=f"{DOCS}/pulls/pulls#list-pull-requests",
                errors=[{"resource": "Search", "field": "state", "code": "invalid"}],
            )
        sort = q.get("sort", "created")
        direction = q.get("direction", "desc" if sort == "created" else "asc")
        per_page = max(1, min(100, _int(q.get("per_page"), 30)))
        page = max(1, _int(q.get("page"), 1))
        with self._lock:
            self._state.settle()
            repo = self._repo_of(request)
            found = list(repo.pulls.values())
            if state != "all":
                found = [p for p in found if p.state == state]
            head = q.get("head")
            # GitHub filters by head only in the form user:ref-name; a bare branch name
            # filters nothing (every pull request comes back).
            if head and ":" in head:
                owner, _, ref = head.partition(":")
                found = (
                    [p for p in found if p.head == ref]
                    if owner.lower() == repo.owner.login.lower()
                    else []
                )
            if q.get("base"):
                found = [p for p in found if p.base == q.get("base")]
            by_update = sort in ("updated", "popularity")
            found.sort(
                key=lambda p: (p.updated_at if by_update else "", p.number),
                reverse=direction == "desc",
            )
            chosen = found[(page - 1) * per_page : page * per_page]
            return JSONResponse([self._render.pull_simple(repo, p, version) for p in chosen])

    async def _create_pull(self, request: Request, body: Any, user: User, version: str) -> Response:
        if not isinstance(body, dict):
            raise GitHubError(400, "Problems parsing JSON")
        with self._lock:
            repo = self._repo_of(request)
            missing = [f for f in ("head", "base") if not isinstance(body.get(f), str)]
            if missing:
                raise GitHubError(
                    422,
                    f'Invalid request.\n\n"{missing[0]}" wasn\'t supplied.',
                    docs="https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                )
            pull = self._state.create_pull(
                repo,
                title=body.get("title"),
                head=body["head"],
                base=body["base"],
                body=body.get("body"),
                draft=bool(body.get("draft", False)),
                author=user,
            )
            out = self._render.pull(repo, pull, version)
        return JSONResponse(out, status_code=201, headers={"Location": out["url"]})

    async def _get_pull(self, request: Request, body: Any, user: User, version: str) -> Response:
        with self._lock:
            self._state.settle()
            repo, pull = self._pull_of(request)
            return JSONResponse(self._render.pull(repo, pull, version))

    async def _merge(self, request: Request, body: Any, user: User, version: str) -> Response:
        body = body if isinstance(body, dict) else {}
        with self._lock:
            repo, pull = self._pull_of(request)
            sha = self._state.merge(
                repo,
                pull,
                by=user,
                sha=body.get("sha"),
                title=body.get("commit_title"),
                message=body.get("commit_message"),
                method=body.get("merge_method") or "merge",
            )
        return JSONResponse(
            {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    async def _labels(self, request: Request, body: Any, user: User, version: str) -> Response:
        names = body.get("labels") if isinstance(body, dict) else body
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise GitHubError(
                422,
                "Invalid request.\n\nFor 'links/0/schema', nil is not an array.",
                docs=f"{DOCS}/issues/labels#add-labels-to-an-issue",
            )
        with self._lock:
            repo, pull = self._pull_of(request)
            labels = self._state.add_labels(repo, pull, names)
            return JSONResponse([self._render.label(repo, label) for label in labels])

    async def _comment(self, request: Request, body: Any, user: User, version: str) -> Response:
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise GitHubError(
                422,
                'Invalid request.\n\n"body" wasn\'t supplied.',
                docs=f"{DOCS}/issues/comments#create-an-issue-comment",
            )
        with self._lock:
            repo, pull = self._pull_of(request)
            comment = self._state.add_comment(pull, text, user)
            out = self._render.comment(repo, pull, comment)
        return JSONResponse(out, status_code=201, headers={"Location": out["url"]})

    async def _not_found(self, request: Request, body: Any, user: User, version: str) -> Response:
        raise GitHubError(404, "Not Found")

    # ── GraphQL: the one mutation auto-merge needs ──

    async def _graphql(self, request: Request, body: Any, user: User, version: str) -> Response:
        query = body.get("query") if isinstance(body, dict) else None
        variables = (body.get("variables") or {}) if isinstance(body, dict) else {}
        if not isinstance(query, str):
            return JSONResponse(
                {
                    "errors": [
                        {"message": "A query attribute must be specified and must be a string."}
                    ]
                }
            )
        kind = _MUTATION.search(query)
        field = _FIRST_FIELD.search(query[kind.end() :] if kind else query)
        name = field.group(1) if field else ""
        if not kind or kind.group(1) != "mutation" or name != "enablePullRequestAutoMerge":
            on = "Mutation" if kind and kind.group(1) == "mutation" else "Query"
            return JSONResponse(
                {
                    "errors": [
                        {
                            "path": [kind.group(1) if kind else "query", name],
                            "extensions": {
                                "code": "undefinedField",
                                "typeName": on,
                                "fieldName": name,
                            },
                            "message": f"Field '{name}' doesn't exist on type '{on}' "
                            "(the sim serves only enablePullRequestAutoMerge)",
                        }
                    ]
                }
            )
        given = variables.get("input") if isinstance(variables, dict) else None
        if not isinstance(given, dict) or not isinstance(given.get("pullRequestId"), str):
            return JSONResponse(
                {
                    "errors": [
                        {
                            "extensions": {"code": "missingRequiredInputObjectAttribute"},
                            "message": "Variable $input of type "
                            "EnablePullRequestAutoMergeInput! was provided invalid value",
                        }
                    ]
                }
            )
        method = str(given.get("mergeMethod") or "MERGE").lower()
        try:
            with self._lock:
                _repo, pull = self._state.enable_auto_merge(
                    given["pullRequestId"],
                    by=user,
                    method=method,
                    headline=given.get("commitHeadline"),
                    body=given.get("commitBody"),
                )
                auto = pull.auto_merge
                data = {
                    "clientMutationId": given.get("clientMutationId"),
                    "pullRequest": {
                        "id": node_id("PullRequest", pull.id),
                        "number": pull.number,
                        "state": "OPEN",
                        "autoMergeRequest": {
                            "mergeMethod": method.upper(),
                            "commitHeadline": auto.commit_title if auto else None,
                            "commitBody": auto.commit_message if auto else None,
                            "enabledBy": {"login": user.login},
                        },
                    },
                }
        except GraphQLError as e:
            error: dict[str, Any] = {
                "path": ["enablePullRequestAutoMerge"],
                "locations": [{"line": 1, "column": 1}],
                "message": e.message,
            }
            if e.type:
                error = {"type": e.type, **error}
            return JSONResponse({"data": {"enablePullRequestAutoMerge": None}, "errors": [error]})
        return JSONResponse({"data": {"enablePullRequestAutoMerge": data}})


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _answer(response: Response) -> Any:
    raw = bytes(response.body)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
