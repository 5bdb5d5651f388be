"""What the Tier 3 (GitOps revert) end-to-end and fault tests do alike: wait for the card
that offers Start, and for the modal the Start click fills with the prepared revert."""

from __future__ import annotations

from typing import Any

from bot.sim.harness import ONCALL, SimWorld
from tests.helpers import eventually


async def card_with_start(
    world: SimWorld, *, what: str = "the card with Start Tier 3 revert"
) -> dict[str, Any]:
    """The service's card once it offers Start Tier 3 revert."""
    card: dict[str, Any] = await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "tier3_start") and c,
        timeout=60,
        what=what,
    )
    return card


async def prepared_modal(world: SimWorld, user: tuple[str, str] = ONCALL) -> dict[str, Any]:
    """The modal open for `user` once it shows the prepared revert (`tier3_confirm`)."""

    async def ready() -> dict[str, Any] | None:
        views = world.slack.open_views(user[0])
        if views and views[-1].get("callback_id") == "tier3_confirm":
            return dict(views[-1])
        return None

    return await eventually(ready, timeout=30, interval=0.05, what="the prepared revert modal")
