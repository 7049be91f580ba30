"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started in a temporary directory.

No server is assumed running. The binaries are found under ``/usr/lib/postgresql/<version>/bin``
(not on PATH on Debian); ``make system-deps`` installs the package. ``initdb`` refuses to run as
root and the tests here run as root, so the cluster belongs to an unprivileged system user (the
package's ``postgres``, else ``nobody``) and the server runs as that user.

Each pytest-xdist worker starts its own cluster (a session fixture in tests/conftest.py) on a free
loopback port; each test gets a fresh database in it (:meth:`PostgresServer.new_database`).
The server is stopped at the end of the session, and at interpreter exit if the session was cut short.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["EXTERNAL", "PostgresServer", "external_database", "postgres_bindir"]

#: the environment variable naming a database server of the bank's choice (a domestic PostgreSQL-derived one,
#: say) for the tests that take ``pg_url``: a SQLAlchemy URL whose user may CREATE DATABASE (docs/state.md)
EXTERNAL = "REGBRIDGE_TEST_POSTGRES"

_SUPERUSER = "regbridge"


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory.

    Raises:
        RuntimeError: no PostgreSQL is installed (names the package ``make system-deps`` installs).
    """
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name.split(".")[0])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed: run `make system-deps` (Debian package postgresql)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged user the cluster belongs to when the tests run as root; None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, but neither a `postgres` nor a `nobody` user exists to run PostgreSQL")


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only (trust auth, loopback).

    Args:
        bindir: where ``initdb``/``pg_ctl`` live (default: :func:`postgres_bindir`).
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or postgres_bindir()
        self.user = _server_user()
        # directly under /tmp: pytest's own temp root is root-only (0700), which the server user can't enter
        self.root = Path(tempfile.mkdtemp(prefix="regbridge-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._started = False
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [str(self.bindir / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            cwd=self.root,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            timeout=120,
            **kwargs,
        )

    def start(self) -> PostgresServer:
        """initdb, then start the server; waits until it accepts connections.

        Raises:
            RuntimeError: initdb or the server failed (with the server log's tail).
        """
        try:
            self._run("initdb", "-D", str(self.data), "-U", _SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"initdb failed: {e.stderr or e.stdout}") from e
        for _attempt in range(5):  # the free port may be taken between the probe and the start
            self.port = _free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=16MB -c dynamic_shared_memory_type=mmap"
            )
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start", check=False
            )
            if done.returncode == 0:
                self._started = True
                atexit.register(self.stop)
                return self
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {tail}")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory; safe to call twice."""
        if self._started:
            self._started = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the server's own ``psql`` (no Python driver involved); returns its output."""
        done = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", _SUPERUSER, "-d", database, "-XAtq", "-c", sql
        )
        return done.stdout

    def new_database(self) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)


def external_database(server_url: str) -> str:
    """A fresh empty database on the server at ``server_url`` (its user may CREATE DATABASE); its URL."""
    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:16]
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as db:
            db.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        engine.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
