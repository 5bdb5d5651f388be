"""A PagerDuty incident's title says the service's real state (issue 14): a canary's weight
only while there is a canary. ("checkout canary revision 17 at 100%" was paged for a
service with no canary.)"""

from __future__ import annotations

import dataclasses

import pytest

from bot.paging.engine import dedup_key, incident_title, parse_dedup_key
from tests.unit.blocks.test_card import ABORTED, HEALTHY, INCIDENT, PAUSED

WHY = (("fp-1", "CheckoutErrorRate: 5xx at 9 %"),)


@pytest.mark.parametrize(
    ("state", "title"),
    [
        (PAUSED, "payment-router canary revision 42 at 25%: CheckoutErrorRate: 5xx at 9 %"),
        (
            HEALTHY,
            "payment-router revision 42 (fully rolled out): CheckoutErrorRate: 5xx at 9 %",
        ),
        (
            ABORTED,
            "payment-router revision 42 (aborted: traffic on the stable version): "
            "CheckoutErrorRate: 5xx at 9 %",
        ),
    ],
    ids=["canary", "fully rolled out", "aborted"],
)
def test_the_title_fits_the_state(state, title) -> None:
    incident = dataclasses.replace(INCIDENT, summaries=WHY)
    assert incident_title("payment-router", state, incident) == title
    assert ("canary" in incident_title("payment-router", state, incident)) is (state is PAUSED)


def test_a_page_again_key_is_the_same_card() -> None:
    key = dedup_key("payment-router", "payments/payment-router@42")
    assert parse_dedup_key(key) == ("payment-router", "payments/payment-router@42")
    assert parse_dedup_key(f"{key}#2") == ("payment-router", "payments/payment-router@42")
    assert parse_dedup_key("someone-else/x") is None
