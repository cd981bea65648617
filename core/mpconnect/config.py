"""The configuration file: which sink, which sources, their schedules and settings.

Looked up as ``--config PATH``, else ``$MPCONNECT_CONFIG``, else ``./mpconnect.toml``;
with none of them, only the built-in ``demo`` source exists. ``${NAME}`` in a string is
read from the environment, else from the ``secrets_file`` the configuration names.
Secret settings (``SecretStr`` fields, ``[mixpanel] secret``) must be written as
``${NAME}`` references, never in clear.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from mpconnect.config_vars import interpolate, load_secrets_file, unset_variables_error
from mpconnect.distributed_config import DistributedConfig
from mpconnect.engine_config import EngineConfig
from mpconnect.errors import ConfigError
from mpconnect.redact import remember_secret, remember_secrets_of

CONFIG_ENV = "MPCONNECT_CONFIG"
DEFAULT_CONFIG = "mpconnect.toml"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DATASET_ID = re.compile(r"[A-Za-z0-9]{1,255}")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_UNKNOWN_KEY = "unknown key; remove it or check its spelling"
_HIDDEN = "**********"


class MixpanelConfig(BaseModel):
    """The ``[mixpanel]`` table: which sink, and the credentials it needs."""

    model_config = ConfigDict(extra="allow")

    sink: str = "embedded"
    project_token: str | None = None
    secret: SecretStr | None = None
    api_url: str | None = None
    ca_bundle: Path | None = None
    timeout: float = Field(default=60.0, gt=0)
    #: Further keys (a sink's own settings) written as ``${NAME}`` references.
    _references: set[str] = PrivateAttr(default_factory=set)
    #: Keys whose ``${NAME}`` variables are not set: ``{"mixpanel.secret": ["NAME"]}``.
    _unresolved: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _unresolved_error: ConfigError | None = PrivateAttr(default=None)

    def __getattribute__(self, name: str) -> Any:
        """Reading a key whose variable is unset raises the error naming every unset one."""
        if not name.startswith(("_", "model_")):
            private = object.__getattribute__(self, "__pydantic_private__") or {}
            if f"mixpanel.{name}" in private.get("_unresolved", ()):
                raise private["_unresolved_error"]
        elif name == "model_extra":
            private = object.__getattribute__(self, "__pydantic_private__") or {}
            extras = set(type(self).model_fields)
            if any(
                k.split(".")[1].split("[")[0] not in extras for k in private.get("_unresolved", ())
            ):
                raise private["_unresolved_error"]
        return super().__getattribute__(name)

    def is_unresolved(self, key: str) -> bool:
        """True when ``key`` (such as ``project_token``) names a variable that is unset."""
        return f"mixpanel.{key}" in self._unresolved

    def __repr_args__(self) -> Any:
        """Show the table, hiding further keys whose values came from ``${NAME}``."""
        for name, value in super().__repr_args__():
            yield name, _HIDDEN if name in self._references else value


class SchedulerConfig(BaseModel):
    """The ``[scheduler]`` table: how ``mpconnect schedule`` runs sources."""

    model_config = ConfigDict(extra="forbid")

    max_parallel: int = Field(default=2, ge=1, le=64)
    timezone: str = "UTC"
    catch_up: Literal["once", "skip"] = "once"
    retry_after: float | None = Field(default=None, gt=0)


def check_max_quarantined(value: Any) -> float | str:
    """Return a valid ``max_quarantined`` (a count, a fraction, ``"unlimited"``) or raise
    ValueError saying what is accepted."""
    if value == "unlimited":
        return "unlimited"
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(
            "must be a count such as 10, a fraction of the records read such as "
            '0.01 (0 allows none), or "unlimited"'
        )
    return float(value)


class SourceConfig(BaseModel):
    """One ``[sources.NAME]`` table."""

    model_config = ConfigDict(extra="forbid")

    name: str
    connector: str
    dataset_id: str
    schedule: str | None = None
    keep_versions: int = Field(default=2, ge=1, le=5)
    #: A count, a fraction of the records read (under 1), or "unlimited".
    max_quarantined: float | Literal["unlimited"] = 0.01
    #: "incremental": read only what changed, where the connector can (see
    #: docs/incremental.md); "full": read everything on every run, keep no cache.
    sync: Literal["incremental", "full"] = "incremental"
    #: Send ``$delete`` for deleted objects' profiles (ingestion sink, incremental runs).
    delete_profiles: bool = False
    # Interpolated settings may hold secrets in clear until the connector's model wraps them.
    settings: dict[str, Any] = Field(default_factory=dict, repr=False)
    #: Why ``settings`` could not be read (a missing variable), raised when the source is used.
    _settings_error: ConfigError | None = PrivateAttr(default=None)

    @field_validator("max_quarantined", mode="before")
    @classmethod
    def _max_quarantined_is_a_limit(cls, value: Any) -> Any:
        return check_max_quarantined(value)

    @field_validator("dataset_id")
    @classmethod
    def _dataset_id_is_alphanumeric(cls, value: str) -> str:
        if not _DATASET_ID.fullmatch(value):
            raise ValueError("must be 1 to 255 letters and digits (the Datasets API's rule)")
        return value


class Config(BaseModel):
    """A whole configuration file, resolved."""

    model_config = ConfigDict(extra="forbid")

    path: Path | None = None
    mixpanel: MixpanelConfig = Field(default_factory=MixpanelConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    #: None: single-machine mode (the default).
    distributed: DistributedConfig | None = None
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    secret_references: dict[str, str] = Field(default_factory=dict, exclude=True)
    builtin_sources: list[str] = Field(default_factory=list, exclude=True)

    def source(self, name: str) -> SourceConfig:
        """Return the source ``name`` or raise ConfigError listing the configured ones."""
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            where = self.path or "the built-in configuration"
            raise ConfigError(
                f"{where}: no source {name!r}; configured sources: {known} "
                f"(add a [sources.{name}] table)"
            ) from None

    def is_reference(self, dotted_key: str) -> bool:
        """True when the value at ``dotted_key`` was written as a ``${NAME}`` reference."""
        return dotted_key in self.secret_references


DEMO_SOURCE: dict[str, Any] = {
    "connector": "demo",
    "dataset_id": "DEMO",
    "keep_versions": 2,
    "settings": {},
}


def _format_validation_error(path: Path | str, prefix: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        err["msg"] = err["msg"].removeprefix("Value error, ")  # pydantic's wording, not ours
        loc = ".".join(str(p) for p in err["loc"])
        dotted = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        if err["type"] == "extra_forbidden":
            problems.append(f"{dotted}: unknown key; remove it or check its spelling")
        elif err["type"] == "missing":
            problems.append(f"{dotted}: required key is missing; add it")
        elif isinstance(err.get("input"), int | float | bool):
            problems.append(f"{dotted}: {err['msg']} (got {err['input']!r})")
        else:  # strings are not echoed: they may be secrets
            problems.append(f"{dotted}: {err['msg']}")
    return f"{path}: " + "; ".join(problems)


def find_config_path(explicit: str | Path | None = None) -> Path | None:
    """Return the configuration file to use, or None when there is none."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(f"{path}: configuration file does not exist (given with --config)")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.exists():
            raise ConfigError(f"{path}: configuration file does not exist (from ${CONFIG_ENV})")
        return path
    default = Path(DEFAULT_CONFIG)
    return default if default.exists() else None


def load_config(explicit: str | Path | None = None) -> Config:
    """Load, interpolate and validate the configuration file.

    With no file at all, the configuration has only the built-in ``demo`` source and the
    ``embedded`` sink. A file that does not define ``demo`` gets it too.

    :raises ConfigError: naming the file, the key, and the fix.
    """
    path = find_config_path(explicit)
    if path is None:
        return parse_config({}, Path("<built-in>"), is_file=False)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path, *, is_file: bool = True) -> Config:
    """Validate an already-parsed TOML document (see :func:`load_config`)."""
    raw = dict(raw)
    secrets: dict[str, str] = {}
    secrets_file = raw.pop("secrets_file", None)
    if secrets_file is not None:
        secrets_path = Path(str(secrets_file)).expanduser()
        if not secrets_path.is_absolute():
            secrets_path = path.parent / secrets_path
        secrets = load_secrets_file(secrets_path, path)
    refs: dict[str, str] = {}
    sources_raw = raw.pop("sources", {}) or {}
    missing: dict[str, list[str]] = {}
    data = interpolate(raw, "", path, secrets, refs, missing)
    unresolved_mixpanel = _drop_unresolved_mixpanel(data, missing)
    if not isinstance(sources_raw, dict):
        raise ConfigError(f"{path}: sources: must be a table of [sources.NAME] tables")
    sources: dict[str, SourceConfig] = {}
    settings_errors: dict[str, ConfigError] = {}
    for name, raw_table in sources_raw.items():
        if not isinstance(raw_table, dict):
            raise ConfigError(f"{path}: sources.{name}: must be a table ([sources.{name}])")
        raw_table = dict(raw_table)
        raw_settings = raw_table.pop("settings", {})
        table = interpolate(raw_table, f"sources.{name}", path, secrets, refs, missing)
        # A variable missing for one source's settings must not stop the others.
        settings_missing: dict[str, list[str]] = {}
        table["settings"] = interpolate(
            raw_settings, f"sources.{name}.settings", path, secrets, refs, settings_missing
        )
        if settings_missing:
            settings_errors[name] = unset_variables_error(path, settings_missing)
            table["settings"] = {}
        if not _SOURCE_NAME.match(name):
            raise ConfigError(
                f"{path}: sources.{name}: a source's name names its files and lock: use "
                "letters, digits, '_', '-' and '.', starting with a letter or digit "
                "(such as [sources.billing_eu])"
            )
        if "name" in table:
            raise ConfigError(
                f"{path}: sources.{name}.name: {_UNKNOWN_KEY} (a source's name is its table's)"
            )
        if any(key.startswith(f"sources.{name}.") for key in missing):
            continue  # reported below, with every other unset variable
        try:
            sources[name] = SourceConfig(name=name, **table)
        except ValidationError as exc:
            raise ConfigError(_format_validation_error(path, f"sources.{name}", exc)) from None
        except TypeError as exc:
            raise ConfigError(f"{path}: sources.{name}: {exc}") from None
    if missing:  # used by every command (or by no command at all): all reported now
        raise unset_variables_error(path, missing)
    owners: dict[str, str] = {}
    for name, source in sources.items():
        other = owners.setdefault(source.dataset_id, name)
        if other != name:
            raise ConfigError(
                f"{path}: sources.{name}.dataset_id: {source.dataset_id!r} is also the dataset "
                f"of source {other!r}; give each source its own dataset (a version is one "
                "source's whole snapshot, and each run prunes the others' versions)"
            )
    for name, error in settings_errors.items():
        sources[name]._settings_error = error
    builtin = []
    if "demo" not in sources:
        sources["demo"] = SourceConfig(name="demo", **DEMO_SOURCE)
        builtin.append("demo")
    for table in ("mixpanel", "engine", "scheduler", "distributed"):
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{path}: {table}: must be a table ([{table}] with keys under it)")
    if "secret" in data.get("mixpanel", {}) and "mixpanel.secret" not in refs:
        raise ConfigError(
            f"{path}: mixpanel.secret: secrets must not be written in clear; "
            'write secret = "${MIXPANEL_SECRET}" and export MIXPANEL_SECRET'
        )
    for key in ("path", "secret_references", "builtin_sources"):
        if key in data:
            raise ConfigError(f"{path}: {key}: {_UNKNOWN_KEY}")
    try:
        config = Config(
            path=path if is_file else None,
            sources=sources,
            secret_references=refs,
            builtin_sources=builtin,
            **data,
        )
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, "", exc)) from None
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if config.mixpanel.secret is not None:
        remember_secret(config.mixpanel.secret.get_secret_value())
    config.mixpanel._references = {
        key.split(".")[1].split("[")[0] for key in refs if key.startswith("mixpanel.")
    }
    if unresolved_mixpanel:
        config.mixpanel._unresolved = unresolved_mixpanel
        config.mixpanel._unresolved_error = unset_variables_error(path, unresolved_mixpanel)
    return config


def _drop_unresolved_mixpanel(
    data: dict[str, Any], missing: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Take ``[mixpanel]`` keys whose variables are unset out of ``data`` and ``missing``.

    They are reported when a sink reads them (:meth:`MixpanelConfig.__getattribute__`),
    so a command or a sink that does not use them is not stopped by them.
    """
    unresolved: dict[str, list[str]] = {}
    table = data.get("mixpanel")
    if not isinstance(table, dict):
        return unresolved
    for key in [k for k in missing if k.startswith("mixpanel.")]:
        unresolved[key] = missing.pop(key)
        table.pop(key.split(".")[1].split("[")[0], None)
    return unresolved


def configured_token(mixpanel: MixpanelConfig, default: str | None) -> str | None:
    """The configured project token; a sink with a ``default`` token (the embedded store)
    does not need ``project_token``, so its unset variable is no error there.

    :raises ConfigError: when the token's variable is unset and there is no default.
    """
    if default and mixpanel.is_unresolved("project_token"):
        return None
    return mixpanel.project_token


def require_connector(config: Config, source: SourceConfig, known: Collection[str]) -> None:
    """Check that the connector a source names is installed.

    :param known: the names of the installed connectors (``plugins.connectors``).
    :raises ConfigError: naming the file, ``sources.NAME.connector`` and the fix.
    """
    if source.connector in known:
        return
    where = config.path or "<built-in>"
    installed = ", ".join(sorted(known)) or "none"
    raise ConfigError(
        f"{where}: sources.{source.name}.connector: no connector {source.connector!r} is "
        f"installed; use one of: {installed} (mpconnect connectors list), or install the "
        "plugin that provides it"
    )


def _secret_fields(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, info in model.model_fields.items()
        if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
    ]


def connector_settings(config: Config, source: SourceConfig, model: type[BaseModel]) -> BaseModel:
    """Validate a source's ``settings`` table with its connector's settings model.

    :raises ConfigError: naming ``sources.NAME.settings.KEY`` and the fix, including for a
        secret written in clear instead of as a ``${NAME}`` reference.
    """
    if source._settings_error is not None:
        raise source._settings_error
    where = config.path or "<built-in>"
    prefix = f"sources.{source.name}.settings"
    for name in _secret_fields(model):
        key = f"{prefix}.{name}"
        if name in source.settings and not config.is_reference(key) and config.path is not None:
            env = f"{source.name}_{name}".upper()
            raise ConfigError(
                f"{where}: {key}: secrets must not be written in clear; "
                f'write {name} = "${{{env}}}" and export {env}'
            )
    try:
        settings = model(**source.settings)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(where, prefix, exc)) from None
    remember_secrets_of(settings)
    return settings
