"""A throwaway PostgreSQL 15 for the tests, and the `store_url` fixture over both backends.

- `postgres_server` (session): initdb into a temp dir (as user `postgres` when running as
  root, since initdb refuses root), `pg_ctl start` on a free loopback port with its socket in
  the same temp dir, durability off (fsync, synchronous_commit, full_page_writes: it is
  thrown away). Stopped and removed at the end of the session. Without the binaries the
  requesting test skips, or fails under ROLLBOT_REQUIRE_PEERS=1 (`require_peer`).
- `postgres_url` (session): `postgresql+psycopg://postgres@127.0.0.1:PORT/rollbot_test`.
- `postgres_db_url` (function): a fresh, empty database per test, dropped afterwards, so
  tests never see each other's rows.
- `store_url` (function, parametrised `sqlite` | `postgres`): every store test runs on both.
- `sql_store` (function): `open_store(store_url)` migrated to head, closed afterwards.
- `two_stores` (function): two stores on one `store_url` database, each with its own engine
  and pool, as two replicas (the first migrates it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.store import SqlStore, open_store
from tests.helpers import on_a_free_port
from tests.plugins.peers import require_peer

PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def find_pg_bindir() -> Path | None:
    """A directory with initdb, pg_ctl and postgres: PATH first, then Debian's layout."""
    on_path = shutil.which("initdb")
    candidates = []
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
        candidates.append(Path(on_path).parent)
    candidates += [
        Path(p)
        for p in sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
            reverse=True,
        )
    ]
    for d in candidates:
        if all(os.access(d / tool, os.X_OK) for tool in PG_TOOLS):
            return d
    return None


@dataclass
class PostgresServer:
    bindir: Path
    base: Path
    port: int = 0
    run_as: tuple[int, int] | None = None  # (uid, gid) for the server tools, when root

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str | Path, timeout: float, check: bool = True) -> None:
        uid, gid = self.run_as if self.run_as is not None else (None, None)
        subprocess.run(
            [str(a) for a in args],
            cwd=self.base,  # the caller's cwd may be unreadable for `postgres`
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=uid,
            group=gid,
            extra_groups=[] if self.run_as is not None else None,
        )

    def initdb(self) -> None:
        self._run(
            self.bindir / "initdb",
            "-D",
            self.datadir,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            timeout=120,
            check=True,
        )

    def start(self) -> None:
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            self.bindir / "pg_ctl",
            "-D",
            self.datadir,
            "-l",
            self.base / "server.log",
            "-w",
            "-t",
            "60",
            "-o",
            opts,
            "start",
            timeout=90,
            check=True,
        )

    def stop(self) -> None:
        self._run(
            self.bindir / "pg_ctl",
            "-D",
            self.datadir,
            "-m",
            "fast",
            "-w",
            "stop",
            timeout=60,
            check=False,
        )

    def reload(self) -> None:
        """Re-read the configuration files (pg_hba.conf); takes effect shortly after."""
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "reload", timeout=30, check=True)

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_server(bindir: Path) -> PostgresServer:
    base = Path(tempfile.mkdtemp(prefix="rollbot-pg-"))
    server = PostgresServer(bindir=bindir, base=base)
    if os.geteuid() == 0:  # initdb refuses root: run the server tools as `postgres`
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "-r", "postgres"], check=True, capture_output=True)
            pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        server.run_as = (pw.pw_uid, pw.pw_gid)
    server.initdb()

    def start(port: int) -> PostgresServer:
        server.port = port
        server.start()
        return server

    try:  # a free port can be taken between probing and binding: pg_ctl start fails
        return on_a_free_port(
            start, taken=lambda exc: isinstance(exc, subprocess.CalledProcessError)
        )
    except subprocess.CalledProcessError as last:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {last.stderr}\n{log}") from last


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_pg_bindir()
    require_peer("postgres", bindir is not None, "initdb/pg_ctl/postgres not found")
    assert bindir is not None
    server = _start_server(bindir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database("rollbot_test")


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"rollbot_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.peer("postgres"))])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rollbot.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


@pytest.fixture
async def sql_store(store_url: str) -> AsyncIterator[SqlStore]:
    store = await open_store(store_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def two_stores(store_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database, each with its own engine and pool: two replicas."""
    a = await open_store(store_url)
    b = await open_store(store_url, migrate=False)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
