"""``${NAME}`` references in the configuration file: read from the environment, else from
the ``secrets_file`` the configuration names; values of secret keys are remembered so that
no message ever shows them."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from mpconnect.errors import ConfigError
from mpconnect.redact import SECRET_NAME, remember_secret

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_secrets_file(path: Path, config_path: Path) -> dict[str, str]:
    """The ``secrets_file``'s names and values."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"{config_path}: secrets_file: {path} does not exist; create it or remove the key"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return {str(k): str(v) for k, v in data.items()}


def interpolate(
    value: Any,
    key: str,
    path: Path,
    secrets: dict[str, str],
    refs: dict[str, str],
    missing: dict[str, list[str]] | None = None,
) -> Any:
    """Replace ``${NAME}`` references in every string, recording which keys had them.

    :param missing: collects ``{dotted key: [unset variable names]}``; such a key's value
        becomes None. Without it, the first unset variable raises ConfigError.
    """
    if isinstance(value, dict):
        return {
            k: interpolate(v, f"{key}.{k}" if key else k, path, secrets, refs, missing)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            interpolate(v, f"{key}[{i}]", path, secrets, refs, missing) for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "${" not in value:
        return value
    unset: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in os.environ or name in secrets:
            found = os.environ[name] if name in os.environ else secrets[name]
            if SECRET_NAME.search(key.rsplit(".", 1)[-1].split("[")[0]):
                remember_secret(found)  # never shown again, in any message
            return found
        unset.append(name)
        return ""

    refs[key] = value
    result = _REFERENCE.sub(replace, value)
    if not unset:
        return result
    if missing is None:
        raise unset_variables_error(path, {key: unset})
    missing[key] = unset
    return None


def unset_variables_error(path: Path | str, missing: dict[str, list[str]]) -> ConfigError:
    """One error naming every ``${NAME}`` that is not set, with the key that uses it."""
    pairs = [(key, name) for key, names in missing.items() for name in names]
    if len(pairs) == 1:
        key, name = pairs[0]
        return ConfigError(
            f"{path}: {key}: environment variable {name} is not set; "
            f"export {name}=... or define it in the secrets_file"
        )
    listed = ", ".join(f"{name} ({key})" for key, name in pairs)
    return ConfigError(
        f"{path}: {len(pairs)} environment variables are not set: {listed}; "
        "export them or define them in the secrets_file"
    )
