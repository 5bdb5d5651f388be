"""Readiness and the schema (issue 15): a replica is Ready when its database answers at this
rollbot's schema, or at a newer one a newer rollbot migrated (a rolling update: migrations
only add). `bot.store.migrate.schema_problem` says which, from the migrations shipped."""

from __future__ import annotations

from bot.store.migrate import head_revision, schema_problem


def test_at_head_is_ready() -> None:
    assert schema_problem(head_revision()) is None


def test_never_migrated_says_how_to_fix_it() -> None:
    problem = schema_problem(None)
    assert problem == (
        f"database: not migrated (this rollbot needs revision {head_revision()}; "
        "run rollbot db upgrade)"
    )


def test_an_older_known_revision_is_not_ready() -> None:
    assert schema_problem("0001") == (
        f"database: at revision 0001, this rollbot needs {head_revision()} (run rollbot db upgrade)"
    )


def test_a_newer_revision_this_code_does_not_know_is_ready() -> None:
    # What an old replica finds while a newer rollbot rolls out with one more migration.
    assert schema_problem("9999_from_a_newer_rollbot") is None
