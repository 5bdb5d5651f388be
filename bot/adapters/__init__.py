"""One adapter per outside system and SDK: kubernetes (Argo Rollouts), slack (slack_sdk),
pagerduty, jira, unleash and launchdarkly (flags), prometheus (evidence), git (the git
CLI: Tier 3's revert branch), github (githubkit) and gitlab (python-gitlab): Tier 3's pull
and merge requests; `_http` is the shared httpx plumbing, `calls` times each call where it
goes out (latency and errors). Each implements a port of `bot.core.ports` (or
`bot.core.gitops`) and turns the SDK's errors into
`bot.core.errors`. Modules are imported by name."""

__all__: list[str] = []
