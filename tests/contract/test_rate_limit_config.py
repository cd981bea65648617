"""The ``[engine]`` keys of the shared rate limits: defaults, and bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpconnect.config import load_config
from mpconnect.errors import ConfigError


def write(tmp_path: Path, engine: str) -> Path:
    path = tmp_path / "mpconnect.toml"
    path.write_text(
        f'[engine]\n{engine}\n[sources.demo]\nconnector = "demo"\ndataset_id = "DEMO"\n'
    )
    return path


def test_defaults_are_90_percent_of_mixpanels_documented_limit(tmp_path: Path) -> None:
    engine = load_config(write(tmp_path, "")).engine
    assert engine.project_events_per_minute == 1_800_000  # about 30,000 events a second
    assert engine.project_bytes_per_minute == 2_000_000_000
    assert engine.project_rate_share == 0.9
    assert engine.rate_limit_redis_url is None
    assert engine.project_rate_limit is True


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("project_rate_share = 1.5", "engine.project_rate_share: Input should be less than"),
        ("project_rate_share = 0", "engine.project_rate_share: Input should be greater than"),
        ("project_events_per_minute = 0", "engine.project_events_per_minute: Input should be"),
        ("project_bytes_per_minute = -5", "engine.project_bytes_per_minute: Input should be"),
        (
            'rate_limit_redis_url = "http://user:pw@host"',
            "engine.rate_limit_redis_url: must be a Redis URL such as redis://",
        ),
    ],
)
def test_a_bad_value_names_its_key_and_the_fix(tmp_path: Path, line: str, words: str) -> None:
    with pytest.raises(ConfigError, match=r"mpconnect\.toml") as caught:
        load_config(write(tmp_path, line))
    assert words in str(caught.value)
    assert "pw@host" not in str(caught.value)


def test_the_redis_url_is_not_shown(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'rate_limit_redis_url = "redis://:hunter2@host:6379/0"'))
    assert config.engine.rate_limit_redis_url == "redis://:hunter2@host:6379/0"
    assert "hunter2" not in repr(config)
