"""The simulated outside world, for tests and `make demo`: Kubernetes with Argo Rollouts,
Slack, PagerDuty, Jira, LaunchDarkly, Unleash and GitLab as real HTTP servers the real
clients talk to, real Git repositories behind them (`git`), plus the harness and the drills. Nothing in the bot imports this package (an
import-linter contract); only `rollbot demo` does. Modules are imported by name."""

__all__: list[str] = []
