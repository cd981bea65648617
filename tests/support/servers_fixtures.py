"""Fixtures of a real Redis and a real PostgreSQL (see ``real_servers.py``), one per
test session, and an empty database per test: used by the distributed tests and by the
status page's tests of the shared ledger. Registered in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from real_servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server for the session."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the session."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty database of its own for this test."""
    if postgres_server.process is None:  # a fault test left it stopped
        postgres_server.start()
    return postgres_server.create_database()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis, emptied for this test."""
    import redis

    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
