"""The PostgreSQL the tests start (tests/postgres.py): a real server, as an unprivileged user, loopback only."""

from __future__ import annotations

import os

from tests.postgres import PostgresServer


def test_the_server_runs_as_an_unprivileged_user_on_loopback(postgres: PostgresServer) -> None:
    owner = os.stat(postgres.data).st_uid
    assert owner != 0 or os.geteuid() != 0  # initdb refuses root: the cluster belongs to another user
    assert postgres.psql("SHOW listen_addresses").strip() == "127.0.0.1"
    assert postgres.psql("SELECT current_setting('server_version_num')::int >= 120000").strip() == "t"


def test_each_test_database_is_fresh_and_separate(postgres: PostgresServer) -> None:
    first, second = postgres.new_database(), postgres.new_database()
    assert first != second
    db1, db2 = first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]
    postgres.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", db1)
    assert postgres.psql("SELECT count(*) FROM t", db1).strip() == "1"
    assert postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 't'", db2).strip() == "0"
