"""The datasets sink's refusals say what to fix: a 401 points at ``mixpanel.secret``; an
unknown dataset gets advice for the server it is (the local one: ``--dataset NAME``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_datasets_sink import config_text

from mpconnect.config import parse_config
from mpconnect.sinks.datasets import DatasetsSink


def test_a_refused_secret_points_at_mixpanel_secret(
    datasets_server, cli, write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXPANEL_SECRET", "not-the-secret")
    config = write_config(config_text(datasets_server, events=10))

    ran = cli("--config", config, "run", "demo")

    assert ran.exit_code == 1
    assert "HTTP 401" in ran.stderr
    assert "check mixpanel.secret: it must be the project secret or this dataset's secret" in (
        ran.stderr
    )
    assert "not-the-secret" not in ran.output


def test_an_unknown_dataset_on_mixpanel_says_to_check_the_dataset_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXPANEL_SECRET", "s3")
    config = parse_config(
        {"mixpanel": {"sink": "datasets", "project_token": "tok", "secret": "${MIXPANEL_SECRET}"}},
        tmp_path / "mpconnect.toml",
    )
    sink = DatasetsSink(config.mixpanel, tmp_path)

    advice = sink._unknown_dataset_advice("SALES")

    assert "check the source's dataset_id: SALES must be a dataset of this Mixpanel project" in (
        advice
    )
    assert "--dataset" not in advice
