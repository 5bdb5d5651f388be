"""Alembic migrations of rollbot's database (run by `bot.store.migrate`)."""

__all__: list[str] = []
