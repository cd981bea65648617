"""Clients of Mixpanel's HTTP APIs, side by side over :mod:`mpconnect.transport`.

``datasets`` (the Datasets API: versions, imports, publish) and ``ingestion``
(``/import`` and ``/engage``).
"""
