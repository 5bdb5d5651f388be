"""A Jira REST API v2 server (the part rollbot and the `jira` client use), for the demo and
the tests.

`JiraSim` answers over real HTTP on loopback, in its own thread and event loop, like the
other sims in `bot.sim`, with Jira's shapes (checked against the Jira Cloud OpenAPI examples
in tests/fixtures/jira/):

    GET  /rest/api/2/serverInfo               anonymous allowed (as in Jira); `deploymentType`
                                              "Cloud" or "Server", `versionNumbers`, `baseUrl`
    GET  /rest/api/2/myself                   the authenticated user
    GET  /rest/api/2/field                    field list with `clauseNames` (the client reads it
                                              before every search to translate field names)
    GET  /rest/api/2/project/{idOrKey}
    POST /rest/api/2/issue                    201 {"id","key","self"} (+ "transition" when the
                                              body asks for one); validation as below
    GET  /rest/api/2/issue/{idOrKey}          `fields=` (comma list, repeated, *all, *navigable,
                                              -name); 404 "Issue does not exist or you do not
                                              have permission to see it."
    PUT  /rest/api/2/issue/{idOrKey}          `fields` and `update` (labels add/remove/set,
                                              comment add) → 204
    GET  /rest/api/2/issue/{idOrKey}/transitions
    POST /rest/api/2/issue/{idOrKey}/transitions   {"transition": {"id": "31" or 31}} → 204
    GET  /rest/api/2/issue/{idOrKey}/comment  {"startAt","maxResults","total","comments"}
    POST /rest/api/2/issue/{idOrKey}/comment  {"body": …} → 201 with the comment
    GET|POST /rest/api/2/search/jql           Cloud only: the enhanced search (`nextPageToken`,
                                              `isLast`); Server answers 404 (no such resource)
    GET|POST /rest/api/2/search               Server only: the classic search (`startAt`,
                                              `maxResults`, `total`); Cloud answers 410 Gone,
                                              as Atlassian has since the API's removal
    GET  /rest/api/2/user/search              Cloud: `query=` (prefix of display name words or
                                              email); `username=` is refused in GDPR strict
                                              mode. Server: `username=` (name, display name,
                                              email). `includeActive`/`includeInactive`,
                                              `startAt`/`maxResults`.

Authentication: Cloud takes Basic `email:api_token`; Server/Data Center takes
``Authorization: Bearer <personal access token>`` (and Basic `name-or-email:api_token`).
Wrong credentials → 401 everywhere; missing ones → 401 except on serverInfo, which Jira
serves anonymously. Errors use Jira's envelope ``{"errorMessages": [...], "errors": {...}}``
(unknown REST paths: ``{"message": "null for uri: …", "status-code": 404}``).

Create and edit validate like Jira: the project (key or id) must exist, else only
``errors.project``; the issue type (name or id) must be one of the project's; a summary is
required (no newlines, < 255 characters); per-project required fields
(``projects={"PAY": {"required": ["priority"]}}`` → ``errors.priority``); the assignee and
reporter must be known users (Cloud: ``{"accountId"}`` or ``{"id"}``; Server: ``{"name"}``);
`duedate` must be YYYY-MM-DD; labels must be strings without spaces; `description` and
`environment` are wiki-markup strings, or an ADF ``{"type": "doc", …}`` document, which is
stored as the plain text of its paragraphs (REST v2 answers strings). Any other field is
refused ("cannot be set. It is not on the appropriate screen, or unknown") unless the project
lists it in ``fields`` (then stored verbatim). All field errors of a request come back
together.

Workflows (per project, ``"workflow"``): "simple" (Jira Cloud's default: To Do / In Progress
/ Done, transitions 11, 21, 31 from any status to any other), "classic" (Jira Server's:
Open, In Progress, Resolved, Closed, Reopened; "Reopen Issue" = 3) and "no-reopen" (simple,
but nothing leaves Done). Entering a done-category status sets `resolution` and
`resolutiondate`; leaving it clears them.

JQL (`bot.sim.jira.jql`, a small hand-written parser): clauses joined by AND, each
``field = value``, ``!=``, ``in (…)``,
``not in (…)``, ``is [not] EMPTY|NULL``, on project, key/issuekey, labels, status,
statusCategory, issuetype/type, assignee, resolution; values quoted ("…", '…') or bare words;
ORDER BY parsed and ignored (results in creation order). Anything else (OR, NOT,
parentheses, functions, ~, <, …) → 400 in Jira's shape, saying it is beyond the sim. Unknown
projects and statuses → 400 as in Jira ("The value 'X' does not exist for the field
'project'."). EVENTUAL CONSISTENCY: an issue shows up in search only `search_lag` seconds
after its creation, as Jira Cloud's index lags (GET by key sees it at once).

Test controls: `add_user`, `set_down(True, down_mode="503"|"refuse", retry_after=None)`,
`fail_next(n, status=…, body=…, retry_after=…, path=…)`, `latency` (seconds every answer
waits), `validation_errors_as_messages`
(answer validation errors in the ``errorMessages``-only shape of the fixture), `transition`
(a human moving an issue), `search_lag` (settable); inspection: `issues`, `created_count`,
`comments(key)`, `requests` (`bot.sim._server.RecordedRequest`: method, path, query, the
parsed body, headers with the credentials redacted, the authenticated user, status, the
answer).

The package, by responsibility: `server` (JiraSim: the HTTP server, its routes, faults,
authentication, the request record), `api` (the endpoints), `model` (projects, users,
issues, validation, workflows), `render` (Jira's JSON shapes), `adf` (Atlassian Document
Format in), `jql` (the JQL subset).
"""

from bot.sim._server import RecordedRequest
from bot.sim.jira.model import JiraError
from bot.sim.jira.server import DownMode, JiraSim

__all__ = ["DownMode", "JiraError", "JiraSim", "RecordedRequest"]
