"""The local Mixpanel server behind ``mpconnect serve``: the Datasets and ingestion
endpoints in one aiohttp app, faults, rate limits, TLS and the background-server helper."""
