"""Log lines of a run start with the source's name, whatever the connector logs.

Connectors log through ``ctx.log``, the logger ``mpconnect.source.NAME``;
:class:`SourcePrefixFilter` puts ``NAME: `` in front of their messages unless they
already start with it, so ``billing: stripe: read 12 customers`` tells which source of
several wrote the line.
"""

from __future__ import annotations

import logging

#: The logger prefix under which connectors log (``RunContext.log``).
SOURCE_LOGGER = "mpconnect.source"


def source_of(logger_name: str) -> str | None:
    """The source a logger belongs to: ``mpconnect.source.billing`` -> ``billing``.

    A source's name may hold dots (``billing.eu``), so the whole rest is the name.
    """
    prefix = SOURCE_LOGGER + "."
    if not logger_name.startswith(prefix):
        return None
    return logger_name[len(prefix) :] or None


class SourcePrefixFilter(logging.Filter):
    """Prefix a connector's log messages with its source's name (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record.msg`` once, in place, to start with ``SOURCE: ``."""
        source = source_of(record.name)
        if source is None or getattr(record, "mpconnect_source", None) is not None:
            return True
        record.mpconnect_source = source
        message = record.getMessage()
        if not message.startswith(f"{source}: "):
            record.msg, record.args = f"{source}: {message}", None
        return True
