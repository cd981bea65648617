"""Opening the configured sink: check the ``[mixpanel]`` table, instantiate the sink, and
the project token records carry."""

from __future__ import annotations

from pathlib import Path

from mpconnect.config import Config, configured_token
from mpconnect.errors import ConfigError, MpconnectError
from mpconnect.located import in_file
from mpconnect.plugins import Plugins
from mpconnect.sink import Sink


def check_sink(config: Config, plugins: Plugins) -> type[Sink]:
    """Check the ``[mixpanel]`` table as a run would, without opening the sink: the sink
    exists, no key is one it does not read, and a token is there if it needs one.

    :raises MpconnectError: naming the key and the fix.
    """
    where = config.path or "the configuration"
    try:
        entry = plugins.sink(config.mixpanel.sink)
    except MpconnectError as exc:
        raise ConfigError(f"{where}: mixpanel.sink: {exc}") from None
    unknown = sorted(set(config.mixpanel.model_extra or {}) - entry.cls.extra_settings)
    if unknown:
        known = ", ".join(sorted({*type(config.mixpanel).model_fields, *entry.cls.extra_settings}))
        raise ConfigError(
            f"{where}: mixpanel.{unknown[0]}: unknown key for the {entry.name!r} sink; "
            f"check its spelling (keys: {known})"
        )
    if not configured_token(config.mixpanel, entry.cls.default_token) and (
        not entry.cls.default_token
    ):
        raise ConfigError(
            f"{where}: mixpanel.project_token: the {entry.name!r} sink needs the project "
            'token; add project_token = "${MIXPANEL_PROJECT_TOKEN}" to [mixpanel]'
        )
    return entry.cls


def open_sink(config: Config, plugins: Plugins, home: Path) -> Sink:
    """Instantiate the configured sink after :func:`check_sink`; the sink's constructor
    checks the values of the keys it reads.

    :raises MpconnectError: naming the file, the key and the fix.
    """
    sink_cls = check_sink(config, plugins)
    try:
        return sink_cls(config.mixpanel, home)
    except ConfigError as exc:
        raise ConfigError(in_file(str(exc), config.path)) from None


def project_token(config: Config, sink: Sink) -> str:
    """The project token records carry: the configured one, else the sink's default."""
    return configured_token(config.mixpanel, sink.default_token) or sink.default_token or ""
