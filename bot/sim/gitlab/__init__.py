"""A GitLab REST API v4 server (the merge request part rollbot and python-gitlab use), for
the demo and the tests.

`GitLabSim` answers over real HTTP on loopback, in its own thread and event loop, like the
other sims in `bot.sim`, with the requests and answers of GitLab's documentation
(doc/api/merge_requests.md, doc/api/notes.md, doc/api/projects.md; the examples used are
in tests/fixtures/gitlab/, see SOURCES.md there). Each project is a real bare repository
(`bot.sim.git.BareRepo`): branch heads, a merge request's `sha` and its changes are read
live from it, and a merge is a real merge commit made there.

    GET  /api/v4/projects/:id                          the project
    GET  /api/v4/projects/:id/merge_requests            `state` (all, the default | opened |
                                                        closed | merged | locked),
                                                        `source_branch`, `target_branch`,
                                                        `labels`, `iids[]`, `order_by`,
                                                        `sort`, `page`/`per_page` with the
                                                        X-Page, X-Total… headers
    POST /api/v4/projects/:id/merge_requests            201; `source_branch`, `target_branch`,
                                                        `title` (400 `{"error": "title is
                                                        missing"}`), `description`, `labels`
                                                        (comma-separated), `remove_source_branch`,
                                                        `squash`; 409 `{"message": ["Another
                                                        open merge request already exists for
                                                        this source branch: !N"]}` (same source
                                                        and target); 422 for the same branch
                                                        twice or a branch that does not exist
    GET  /api/v4/projects/:id/merge_requests/:iid       the merge request (`state`, `sha`,
                                                        `merge_commit_sha`,
                                                        `detailed_merge_status`,
                                                        `merge_when_pipeline_succeeds`,
                                                        `merge_user`, `diff_refs`, `web_url`…)
    POST /api/v4/projects/:id/merge_requests/:iid/notes 201 with the note (`body`)
    GET  /api/v4/projects/:id/merge_requests/:iid/notes
    PUT  /api/v4/projects/:id/merge_requests/:iid/merge `merge_commit_message`, `sha`, `squash`,
                                                        `squash_commit_message`,
                                                        `should_remove_source_branch`,
                                                        `merge_when_pipeline_succeeds` or
                                                        `auto_merge`

`:id` is the numeric id or the URL-encoded path (`platform%2Fconfigs`). Parameters are read
from the query string and the body (JSON or form), as GitLab's Grape does.

The merge, in the order of GitLab's API (lib/api/merge_requests.rb): `sha` given and not the
source head → 409 `{"message": "SHA does not match HEAD of source branch: <head>"}`; asked
to auto-merge while a check is pending (the head pipeline created/pending/running:
merge_when_pipeline_succeeds; approvals missing: merge_when_checks_pass) → 200 with
`merge_when_pipeline_succeeds: true`, and the sim merges when the last check passes (an
approval, the pipeline's success), with the message given then; otherwise
`detailed_merge_status` must be `mergeable`, else 405 `{"message": "405 Method Not
Allowed"}` (a merged or closed merge request too: `not_open`); a merge git refuses (a
conflict) → 422 `{"message": "Branch cannot be merged"}`. `detailed_merge_status` is, first
blocker first: not_open, commits_status (a branch gone), ci_still_running / ci_must_pass
(only with "Pipelines must succeed"), not_approved, else mergeable. A merge commit gets
`merge_commit_message`, else GitLab's default ("Merge branch 'a' into 'b'…"); with `squash`
one commit is made (`squash_commit_sha`, the squash message or the title) and no separate
merge commit. An auto-merge whose source branch moves before it runs is aborted, with
GitLab's `merge_error`.

Authentication: `PRIVATE-TOKEN: <token>` (python-gitlab's `private_token`) or
`Authorization: Bearer <token>`; anything else → 401 `{"message": "401 Unauthorized"}`.
Unknown routes → 404 `{"error": "404 Not Found"}`; unknown projects → 404 `{"message":
"404 Project Not Found"}`, merge requests → 404 `{"message": "404 Not found"}`.

Simplified: one user (the token's, who authors and merges everything); no permissions
(403), rate limits, drafts, discussions, forks or approval rules beyond a count; a failed
pipeline leaves an auto-merge set rather than aborting it; conflicts show only when the
merge is tried.

Test hooks (what people do on GitLab's pages): `require_approvals(project, n)`,
`approve(project, iid, user)`, `set_pipeline(project, sha, status)`,
`require_pipeline(project)`, `close(project, iid)`. Fault switches: `fail_next(n, status)`
(answered before anything is done) and `lose_next(n, method=…, path_contains=…)` (done,
then answered 502). Inspection: `merge_request`, `merge_requests`, `notes`, `requests`
(`RecordedRequest`, the token redacted).

The package, by responsibility: `server` (GitLabSim: HTTP, routing, auth, faults, the
record), `model` (projects, merge requests, the merge rules), `render` (GitLab's JSON).
"""

from bot.sim._server import RecordedRequest
from bot.sim.gitlab.model import GitLabError
from bot.sim.gitlab.server import DEFAULT_TOKEN, GitLabSim

__all__ = ["DEFAULT_TOKEN", "GitLabError", "GitLabSim", "RecordedRequest"]
