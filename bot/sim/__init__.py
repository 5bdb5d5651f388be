"""The simulated outside world, for tests and `make demo`: Kubernetes with Argo Rollouts,
Slack, PagerDuty, Jira, LaunchDarkly, Unleash and GitHub as real HTTP servers the real
clients talk to (GitHub over real Git, `bot.sim.git`), plus the harness and the drills.
Nothing in the bot imports this package (an import-linter contract); only `rollbot demo`
does. Modules are imported by name."""

__all__: list[str] = []
