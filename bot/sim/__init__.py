"""The simulated outside world, for tests and `make demo`: Kubernetes with Argo Rollouts,
Slack, PagerDuty, Jira, LaunchDarkly, Unleash, GitHub and GitLab as real HTTP servers the
real clients talk to (the code hosts over real Git repositories, `bot.sim.git`), plus the
harness and the drills. Nothing in the bot imports this package (an import-linter
contract); only `rollbot demo` does. Modules are imported by name."""

__all__: list[str] = []
