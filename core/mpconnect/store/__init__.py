"""The embedded store: the Datasets API's semantics in SQLite, with no server."""
