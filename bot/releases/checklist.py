"""The release checklist: what a release should have before it is trusted, each item
checked against the world (catalog, flag provider, cluster, runbook file, PagerDuty, the
ticket records) and shown with its evidence. An item that could not be checked says so
(None) instead of passing or failing.

Reading only: the checklist message in the thread is posted by bot.releases.views.
"""

from __future__ import annotations

from bot.core.errors import RollbotError, TargetNotFound
from bot.core.model import ChecklistItem, Release
from bot.releases.context import ReleaseContext
from bot.releases.text import in_order
from bot.settings import ServiceSettings


class Checklist:
    """The checklist of one release, item by item, from what the world says now."""

    def __init__(self, ctx: ReleaseContext) -> None:
        self.ctx = ctx

    async def items(self, release: Release) -> list[ChecklistItem]:
        ctx = self.ctx
        svc = ctx.service(release.service)
        items: list[ChecklistItem] = []
        risk = svc.release.risk_surface
        items.append(
            ChecklistItem(
                "Risk surface document linked",
                bool(risk),
                risk or f"not set: add `services.{release.service}.release.risk_surface`",
            )
        )
        items.append(await self._check_flags(release.service, svc))
        items.append(await self._check_cluster(svc))
        path = ctx.settings.runbook_path(release.service)
        items.append(
            ChecklistItem(
                "Runbook present",
                path is not None,
                f"{svc.runbook} ({path.stat().st_size} bytes)"
                if path is not None
                else (
                    f"{svc.runbook} not found"
                    if svc.runbook
                    else f"`services.{release.service}.runbook` not set"
                ),
            )
        )
        items.append(await self._check_pagerduty(release.service, svc))
        records = in_order(await ctx.store.tickets(release.id))
        if ctx.tickets is None or not svc.jira.project:
            items.append(
                ChecklistItem(
                    "Cleanup tickets filed",
                    False,
                    "no Jira configured (`jira.url`)"
                    if ctx.tickets is None
                    else f"`services.{release.service}.jira.project` not set",
                )
            )
        else:
            filed = [r for r in records if r.state == "filed"]
            ok = bool(records) and len(filed) == len(records)
            # Plain text, escaped where it is shown; the filed tickets are rollbot's links
            # to Jira, shown as links (a key without a URL: its label alone).
            waiting = "; ".join(
                f"{r.kind}: {r.state}{' (' + r.error + ')' if r.error else ''}"
                for r in records
                if r.state != "filed"
            )
            evidence = f"{len(filed)} of {len(records)} filed" if records else "none yet"
            items.append(
                ChecklistItem(
                    "Cleanup tickets filed",
                    ok,
                    f"{evidence}; {waiting}" if waiting else evidence,
                    links=tuple((r.key or r.kind, r.url or "") for r in filed),
                )
            )
        return items

    async def _check_flags(self, service: str, svc: ServiceSettings) -> ChecklistItem:
        flags = self.ctx.flags
        name = "Flag inventory registered"
        keys = [k for k in (svc.flags.release, svc.flags.experiment, svc.flags.circuit) if k]
        if not keys:
            return ChecklistItem(name, False, f"no flags in `services.{service}.flags`")
        if flags is None:
            return ChecklistItem(
                name,
                None,
                f"{len(keys)} flags in the catalog; no flag provider configured to check them",
            )
        missing: list[str] = []
        for key in keys:
            try:
                await flags.get(key)
            except TargetNotFound:
                missing.append(key)
            except RollbotError as err:
                return ChecklistItem(name, None, f"could not check: {err.message}")
        if missing:
            return ChecklistItem(name, False, f"missing in {flags.provider}: {', '.join(missing)}")
        return ChecklistItem(
            name, True, f"{len(keys)}/{len(keys)} in {flags.provider}: {', '.join(keys)}"
        )

    async def _check_cluster(self, svc: ServiceSettings) -> ChecklistItem:
        rollouts = self.ctx.rollouts
        name = "Rollout and AnalysisTemplate in the cluster"
        templates = getattr(rollouts, "analysis_templates", None)
        try:
            if templates is None:
                await rollouts.get_state(svc.namespace, svc.rollout)
            found: dict[str, bool] = (
                await templates(svc.namespace, svc.rollout) if templates else {}
            )
        except TargetNotFound:
            return ChecklistItem(name, False, f"Rollout {svc.namespace}/{svc.rollout} not found")
        except RollbotError as err:
            return ChecklistItem(name, None, f"could not check: {err.message}")
        if not found:
            return ChecklistItem(
                name,
                False,
                f"Rollout {svc.namespace}/{svc.rollout} found; it refers to no AnalysisTemplate",
            )
        missing = [t for t, ok in found.items() if not ok]
        if missing:
            return ChecklistItem(
                name, False, f"Rollout found; AnalysisTemplate missing: {', '.join(missing)}"
            )
        return ChecklistItem(
            name,
            True,
            f"Rollout {svc.namespace}/{svc.rollout}, AnalysisTemplate {', '.join(found)}",
        )

    async def _check_pagerduty(self, service: str, svc: ServiceSettings) -> ChecklistItem:
        ctx = self.ctx
        name = "Runbook linked from PagerDuty"
        sid = svc.pagerduty.service_id
        if not sid:
            return ChecklistItem(name, False, f"`services.{service}.pagerduty.service_id` not set")
        if ctx.pagerduty is None:
            return ChecklistItem(name, None, "no PagerDuty API token configured to check it")
        wanted = [
            u for u in (ctx.public_url and f"{ctx.public_url}/runbooks/{service}", svc.runbook) if u
        ]
        try:
            description = await ctx.pagerduty.service_description(sid)
        except RollbotError as err:
            return ChecklistItem(name, None, f"could not check service {sid}: {err.message}")
        for url in wanted:
            if url in description:
                return ChecklistItem(name, True, f"PagerDuty service {sid} links {url}")
        return ChecklistItem(
            name,
            False,
            f"PagerDuty service {sid} does not link the runbook (put "
            f"{wanted[0] if wanted else 'its URL'} in its description)",
        )
