"""A configured source that loads the dataset of a built-in one (``demo``, dataset
``DEMO``).

Two configured sources on one dataset are refused when the configuration is read. The
built-in ``demo`` source is added to every configuration that does not define ``demo``,
so a configured source with ``dataset_id = "DEMO"`` shares its dataset unnoticed, and
each run of either prunes the other's versions. A run of either is warned about first.
"""

from __future__ import annotations

import re

from mpconnect.config import Config, SourceConfig


def builtin_dataset_clash(config: Config, source: SourceConfig) -> str | None:
    """The warning for a run of ``source`` when it and a built-in source load one dataset
    (None: they do not). It names both sources and the fix."""
    builtin = set(config.builtin_sources)
    others = [
        other
        for other in config.sources.values()
        if other.name != source.name
        and other.dataset_id == source.dataset_id
        and (other.name in builtin) != (source.name in builtin)
    ]
    if not others:
        return None
    other = others[0]
    configured, built_in = (other, source) if source.name in builtin else (source, other)
    where = config.path or "the configuration"
    return (
        f"dataset {source.dataset_id} is loaded by both the built-in {built_in.name!r} source "
        f"and source {configured.name!r}: a run of either prunes the other's versions; give "
        f"sources.{configured.name}.dataset_id another value in {where} "
        f'(such as dataset_id = "{_suggest(configured)}")'
    )


def _suggest(source: SourceConfig) -> str:
    """A dataset id from the source's name that is not the one it shares."""
    suggestion = re.sub(r"[^A-Za-z0-9]", "", source.name).upper()[:255] or "DATA"
    return suggestion + "2" if suggestion == source.dataset_id.upper() else suggestion
