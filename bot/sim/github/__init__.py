"""A GitHub server (the REST API rollbot and githubkit use, and the one GraphQL mutation
auto-merge needs), over real Git, for the demo and the tests.

`GitHubSim(repos={"platform/configs": BareRepo(...)}, token=...)` answers over real HTTP
on loopback, in its own thread, like the other sims in `bot.sim`, with GitHub's shapes
(the REST API description's schemas; examples in tests/fixtures/github/):

    GET  /repos/{owner}/{repo}                       full-repository (node_id,
                                                     default_branch, allow_auto_merge, …)
    GET  /repos/{owner}/{repo}/pulls                 pull-request-simple list; state
                                                     (open|closed|all, default open),
                                                     head=user:ref-name (a bare branch
                                                     name filters nothing, as on GitHub),
                                                     base, sort, direction, per_page, page
    POST /repos/{owner}/{repo}/pulls                 201 pull-request; 422 Validation
                                                     Failed: head or base invalid (no such
                                                     branch), "No commits between B and H",
                                                     "A pull request already exists for
                                                     owner:branch."
    GET  /repos/{owner}/{repo}/pulls/{n}             pull-request: state, merged,
                                                     merged_at, merge_commit_sha, head.sha
                                                     (read live from the bare repository
                                                     until the pull request closes),
                                                     mergeable, mergeable_state (clean,
                                                     blocked, dirty, draft), auto_merge
    PUT  /repos/{owner}/{repo}/pulls/{n}/merge       200 {sha, merged, message}: a real
                                                     merge commit (`merge`) or a squash on
                                                     the base; 405 "Pull Request is not
                                                     mergeable" (closed, conflict) or what
                                                     branch protection still requires;
                                                     409 "Head branch was modified. …" when
                                                     `sha` is not the head
    POST /repos/{owner}/{repo}/issues/{n}/labels     200 the issue's labels (made as needed)
    POST /repos/{owner}/{repo}/issues/{n}/comments   201 issue-comment
    POST /graphql                                    `enablePullRequestAutoMerge(input:
                                                     $input)` only (the mutation's name and
                                                     its `input` variable are all that is
                                                     read); GitHub's refusals as GraphQL
                                                     errors ("Pull request Pull request is
                                                     in clean status", "… Protected branch
                                                     rules not configured for this branch",
                                                     NOT_FOUND ids); any other operation:
                                                     an `undefinedField` error

Authentication: ``Authorization: Bearer <token>`` or ``token <token>``; anything else is
401 ``{"message": "Bad credentials", …}``. ``X-GitHub-Api-Version`` selects 2022-11-28
(the default) or 2026-03-10, which drops `merge_commit_sha` from pull requests; another
value is 400. Answers carry ``X-GitHub-Api-Version-Selected``.

Git is real: branches, commits and diffs are read from the `BareRepo` (rollbot pushes to
it over smart HTTP, `bot.sim.git.GitHttpServer`), so nothing is cached; a merge is
`BareRepo.merge`, with the commit title and message given.

Test hooks (what people and CI do): `protect(repo, branch, approvals=1, checks=("ci",))`,
`approve(repo, number, user)` (never the author), `set_status(repo, sha, context, state)`,
`allow_auto_merge(repo, allowed)`. A pull request with auto-merge enabled is merged by
the sim as soon as its base's protection is satisfied, with the commit headline and body
given when it was enabled, as GitHub does. Faults: `fail_next(n, status)` answers the next
requests with a 5xx before doing anything; `lose_next(n, status)` does them and then
answers a 5xx (the change is made, the answer lost). Inspection: `requests`
(`bot.sim._server.RecordedRequest`, the token redacted), `pull`, `pulls`, `comments`.

The package, by responsibility: `server` (GitHubSim: the HTTP app, routes, faults,
authentication, hooks, GraphQL), `model` (repositories, pull requests, protection,
merging), `render` (GitHub's JSON shapes).
"""

from bot.sim._server import RecordedRequest
from bot.sim.github.model import GitHubError
from bot.sim.github.server import DEFAULT_TOKEN, GitHubSim

__all__ = ["DEFAULT_TOKEN", "GitHubError", "GitHubSim", "RecordedRequest"]
