"""The distributed tests' fixtures (``postgres_server``, ``redis_server``,
``database_url``, ``broker_url``) live in ``tests/support/servers_fixtures.py``, shared
with the status page's tests."""
