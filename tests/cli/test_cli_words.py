"""Help texts that name both ways of loading, and a configured source on the built-in
demo's dataset, warned about before a run prunes the other's versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

SHOP_ON_DEMO_DATASET = """
    [sources.shop]
    connector = "demo"
    dataset_id = "DEMO"

    [sources.shop.settings]
    events = 200
    """


def test_top_level_help_names_datasets_versions_and_the_ingestion_api(cli: Any) -> None:
    shown = cli("--help")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert (
        'as dataset versions through the Datasets API (sink = "datasets"; "embedded" is '
        "a local store of the same kind), or in batches through the ingestion API's "
        '/import and /engage (sink = "ingestion"; no versions)'
    ) in text


def test_run_help_speaks_of_versions_and_of_batches(cli: Any) -> None:
    shown = cli("run", "--help")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert (
        "With the datasets or embedded sink each run becomes a new live dataset version; "
        "with the ingestion sink (no versions) each run sends its records in batches to "
        "/import and /engage."
    ) in text
    assert (
        "--restart Extract the source again instead of resuming its unfinished run (an "
        "unfinished dataset version is deleted)."
    ) in text


def test_a_source_on_the_demos_dataset_is_warned_about_before_pruning(
    cli: Any, write_config: Callable[..., Path]
) -> None:
    config = write_config(SHOP_ON_DEMO_DATASET)
    warning = (
        "WARNING {name}: dataset DEMO is loaded by both the built-in 'demo' source and "
        f"source 'shop': a run of either prunes the other's versions; give "
        f'sources.shop.dataset_id another value in {config} (such as dataset_id = "SHOP")'
    )
    for _ in range(2):
        shop = cli("--config", config, "run", "shop")
        assert shop.exit_code == 0, shop.output
        assert warning.format(name="shop") in shop.stderr
    demo = cli("--config", config, "run", "demo")
    assert demo.exit_code == 0, demo.output
    logged = demo.stderr
    assert warning.format(name="demo") in logged
    assert "pruning version" in logged, "the demo's run pruned a version of shop's"
    assert logged.index(warning.format(name="demo")) < logged.index("pruning version")


def test_sources_on_their_own_datasets_get_no_warning(
    cli: Any, write_config: Callable[..., Path]
) -> None:
    config = write_config(SHOP_ON_DEMO_DATASET.replace('"DEMO"', '"SHOP"'))
    shop = cli("--config", config, "run", "shop")
    assert shop.exit_code == 0, shop.output
    assert "WARNING" not in shop.stderr
