"""The status page: sources, runs, quarantine and datasets at a glance, a JSON API,
Prometheus metrics and a health check (``mpconnect ui``, ``mpconnect schedule
--http-port``).

- :mod:`mpconnect.ui.status`: what the pages show, read through a :class:`StatusSource`
  (the local ledger, configuration, sink and quarantine files today);
- :mod:`mpconnect.ui.app`: the aiohttp application (pages, ``/api/``, ``/metrics``,
  ``/healthz``); :mod:`mpconnect.ui.guard`: token, CSRF and security headers;
- :mod:`mpconnect.ui.metrics`: the Prometheus collector.

Needs the ``ui`` extra (aiohttp, jinja2, prometheus-client).
"""
