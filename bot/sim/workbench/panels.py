"""The workbench's side panels: the simulated world as small HTML tables.

Rollouts (revision, step, weight, phase), the scenario buttons (an SLO alert to fire or
resolve), the feature flags, PagerDuty incidents, Jira issues, the GitOps repository (its
branches, the pull or merge requests on the code host's sim, Argo CD's sync of it) and the
audit log, each read from the sims or the bot's store as they are now. Also the escaping
and table helpers the rest of the page uses.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.sim import world as sim_world
from bot.sim.argo import current_weight
from bot.sim.harness import SimWorld

__all__ = [
    "AlertScenario",
    "FlagSource",
    "audit_panel",
    "esc",
    "flags_panel",
    "gitops_panel",
    "jira_panel",
    "pagerduty_panel",
    "rollouts_panel",
    "scenarios_panel",
    "table",
]


@dataclass(frozen=True, slots=True)
class FlagSource:
    """A flag panel row source: the provider's name, the flag keys and how to read one."""

    provider: str
    keys: tuple[str, ...]
    is_on: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class AlertScenario:
    """A scenario button: the SLO alert Alertmanager would send about `service`."""

    service: str
    alertname: str
    summary: str
    labels: tuple[tuple[str, str], ...] = ()


def esc(value: Any) -> str:
    """`value` as HTML text (quotes escaped too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def table(head: Iterable[str], rows: list[str]) -> str:
    """A panel table with `head` over the `rows` (already HTML); "nothing yet" when empty."""
    if not rows:
        return '<p class="wb-empty">nothing yet</p>'
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join(rows)
    return f'<table class="wb-table"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


@dataclass(frozen=True, slots=True)
class RolloutFacts:
    """What the workbench shows of one Rollout in the Kubernetes sim."""

    namespace: str
    name: str
    revision: str
    version: str
    step: str
    where: str
    phase: str

    @property
    def sentence(self) -> str:
        """`Paused, canary 25 % at step 4/9` / `Healthy, stable 100 %`."""
        return f"{self.phase}, {self.where}" + (
            "" if self.where.startswith("stable") else f" at step {self.step}"
        )


def rollout_facts(world: SimWorld) -> list[RolloutFacts]:
    out = []
    for ro in world.kube.list("rollouts"):
        meta, spec, status = ro["metadata"], ro.get("spec") or {}, ro.get("status") or {}
        steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
        idx = int(status.get("currentStepIndex", 0) or 0)
        weight = current_weight(status, steps, idx)
        revision = (meta.get("annotations") or {}).get("rollout.argoproj.io/revision", "?")
        phase = str(status.get("phase", ""))
        flags = " · aborted" if status.get("abort") else ""
        flags += " · paused" if status.get("pauseConditions") else ""
        promoted = bool(status.get("stableRS")) and status.get("stableRS") == status.get(
            "currentPodHash"
        )
        image = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
        out.append(
            RolloutFacts(
                namespace=str(meta["namespace"]),
                name=str(meta["name"]),
                revision=str(revision),
                version=str(image[0].get("image", "")).rsplit(":", 1)[-1],
                step=f"{min(idx, len(steps))}/{len(steps)}",
                where="stable 100 %" if promoted else f"canary {weight} %",
                phase=phase + flags,
            )
        )
    return out


def rollouts_panel(world: SimWorld) -> str:
    rows = [
        f'<tr data-rollout="{esc(f.name)}"><td>{esc(f.namespace)}/'
        f"{esc(f.name)}</td><td>{esc(f.revision)} ({esc(f.version)})</td>"
        f"<td>{esc(f.step)}</td>"
        f'<td class="wb-weight">{esc(f.where)}</td>'
        f'<td class="wb-phase">{esc(f.phase)}</td></tr>'
        for f in rollout_facts(world)
    ]
    return table(("Rollout", "Revision", "Step", "Weight", "Phase"), rows)


def scenarios_panel(alerts: dict[str, AlertScenario], firing: set[str]) -> str:
    if not alerts:
        return ""
    rows = []
    for service, scenario in alerts.items():
        is_firing = service in firing
        action = "resolved" if is_firing else "firing"
        label = "Resolve the alert" if is_firing else "Fire the SLO alert"
        rows.append(
            f"<tr><td>{esc(service)}</td><td><code>{esc(scenario.alertname)}</code> "
            f"{esc(scenario.summary)}</td><td>"
            f'<button type="button" class="wb-scenario" data-service="{esc(service)}" '
            f'data-status="{action}">{label}</button></td></tr>'
        )
    return table(("Service", "Alertmanager alert", ""), rows)


def flags_panel(flags: list[FlagSource]) -> str:
    rows = []
    for source in flags:
        for key in source.keys:
            on = source.is_on(key)
            rows.append(
                f"<tr><td>{esc(source.provider)}</td><td><code>{esc(key)}</code></td>"
                f'<td class="{"wb-on" if on else "wb-off"}">{"on" if on else "off"}</td></tr>'
            )
    return table(("Provider", "Flag", "State"), rows) if flags else ""


def pagerduty_panel(world: SimWorld) -> str:
    pd = getattr(world, "pd", None)
    if pd is None:
        return ""
    rows = [
        f"<tr><td>{esc(i.get('id'))}</td><td>{esc(i.get('status'))}</td>"
        f"<td>{esc(i.get('title'))}</td></tr>"
        for i in pd.incidents()
    ]
    return table(("Incident", "Status", "Title"), rows)


def jira_panel(world: SimWorld) -> str:
    jira = getattr(world, "jira", None)
    if jira is None:
        return ""
    rows = []
    for key, issue in sorted(jira.issues.items()):
        fields = issue.get("fields") or {}
        status = (fields.get("status") or {}).get("name", "")
        rows.append(
            f"<tr><td>{esc(key)}</td><td>{esc(status)}</td>"
            f"<td>{esc(fields.get('duedate') or '')}</td>"
            f"<td>{esc(fields.get('summary', ''))}</td></tr>"
        )
    return table(("Key", "Status", "Due", "Summary"), rows)


def gitops_panel(world: SimWorld) -> str:
    """The GitOps repository of a world with `gitops`: each branch and its head, each pull
    request (GitHub) or merge request (GitLab) with its state, and what Argo CD synced."""
    if getattr(world, "gitops", None) is None:
        return ""
    project = sim_world.GITOPS_PROJECT
    rows = [
        f'<tr data-branch="{esc(name)}"><td>branch <code>{esc(name)}</code></td>'
        f"<td><code>{esc(sha[:12])}</code></td><td></td></tr>"
        for name, sha in sorted(world.gitops_repo.branches().items())
    ]
    if world.gitops == "github":
        requests = [
            (
                f"#{p['number']}",
                "merged" if p.get("merged") else str(p.get("state", "")),
                f"{p['head']['ref']} → {p['base']['ref']}",
                str(p.get("title", "")),
            )
            for p in world.code_host.pulls(project)
        ]
        kind = "pull request"
    else:
        requests = [
            (
                f"!{m['iid']}",
                str(m.get("state", "")),
                f"{m['source_branch']} → {m['target_branch']}",
                str(m.get("title", "")),
            )
            for m in world.code_host.merge_requests(project)
        ]
        kind = "merge request"
    rows += [
        f'<tr data-request="{esc(ref)}"><td>{kind} {esc(ref)}</td>'
        f'<td class="wb-request-state">{esc(state)}</td>'
        f"<td>{esc(title)}<br><code>{esc(branches)}</code></td></tr>"
        for ref, state, branches, title in requests
    ]
    app = world.kube.get("applications", "argocd", sim_world.ROLLOUT) or {}
    status = app.get("status") or {}
    sync, health = status.get("sync") or {}, status.get("health") or {}
    if app:
        rows.append(
            f'<tr data-application="{esc(sim_world.ROLLOUT)}"><td>Argo CD '
            f"<code>{esc(sim_world.ROLLOUT)}</code></td>"
            f'<td class="wb-sync">{esc(sync.get("status", ""))}, {esc(health.get("status", ""))}'
            f"</td><td>revision <code>{esc(str(sync.get('revision', ''))[:12])}</code></td></tr>"
        )
    host = "GitHub" if world.gitops == "github" else "GitLab"
    return table((f"{project} on {host}", "State", "Detail"), rows)


async def audit_panel(world: SimWorld) -> str:
    records = await world.rollbot.store.audit_entries()
    rows = [
        f"<tr><td>{r.seq}</td><td>{esc(r.entry.at.strftime('%H:%M:%S'))}</td>"
        f"<td>{esc(r.entry.actor)}</td><td>{esc(r.entry.action)}</td>"
        f"<td>{esc(r.entry.target)}</td><td>{esc(r.entry.result)}</td></tr>"
        for r in records[-30:]
    ]
    return table(("#", "At", "Actor", "Action", "Target", "Result"), rows[::-1])
