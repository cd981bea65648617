"""A run loads the same version, quarantines the same records with the same reasons and
counts the same duplicates with the C accelerator as with the Python path alone
(``MPCONNECT_PURE_PYTHON=1``); an Event subclass keeps its own conversion."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_support import make_config, make_engine

import mpconnect
from mpconnect import event_lines

pytestmark = pytest.mark.skipif(
    not event_lines.compiled(), reason="mpconnect._speedups is not compiled"
)
NOW = 1_700_000_000


class Shouting(mpconnect.Event):
    """An event type that converts itself its own way."""

    def to_mixpanel(self, token: str, latest_time: int | None = None) -> dict[str, Any]:
        converted = mpconnect.Event.to_mixpanel(self, token, latest_time)
        converted["event"] = converted["event"].upper()
        return converted


def mixed_events() -> list[mpconnect.Event]:
    """Usual events, events only the Python path converts, and bad ones."""
    out: list[mpconnect.Event] = []
    for i in (j % 2400 for j in range(2500)):  # 100 duplicates, equal to their twins
        out.append(
            mpconnect.Event(
                "Order Placed",
                f"customer-{i % 300:06d}",
                NOW + i,
                f"order-{i}",
                {"total": i * 7, "coupon": None if i % 3 else "WINTER", "gift": i % 2 == 0},
            )
        )
    out += [
        mpconnect.Event("Order Placed", "customer-000001", NOW, "float", {"ratio": 0.25}),
        mpconnect.Event(
            "Order Placed", "customer-000001", NOW, "date", {"at": datetime(2024, 1, 1, tzinfo=UTC)}
        ),
        mpconnect.Event("Order Placed", "customer-000001", NOW, "nested", {"cart": {"n": 2}}),
        mpconnect.Event("Order Placed", "customer-000001", NOW, "huge-int", {"n": 2**70}),
        mpconnect.Event("Order Placed", "anon", NOW, "placeholder-user"),
        mpconnect.Event("Order Placed", "customer-000001", 12, "too-early"),
        mpconnect.Event("", "customer-000001", NOW, "no-name"),
        mpconnect.Event("Order Placed", "customer-000001", NOW, "reserved", {"token": "x"}),
        mpconnect.Event("Order Placed", "customer-000001", NOW, None, insert_id="explicit-1"),
        mpconnect.Event("Order Placed", "customer-000001", NOW, None, insert_id="null"),
        mpconnect.Event("Order Placed", "customer-000001", NOW, "big", {"blob": "x" * 1_100_000}),
        Shouting("Order Placed", "customer-000001", NOW, "shouted"),
    ]
    return out


class MixedConnector(mpconnect.Connector):
    """Yields :func:`mixed_events`, then fails if ``fail_after`` says so."""

    name = "mixed"

    class Settings(mpconnect.ConnectorSettings):
        fail_after: int | None = None

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        """The mixed events."""
        for index, event in enumerate(mixed_events()):
            if index == self.settings.fail_after:
                raise ConnectionResetError("the source hung up")
            yield event

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        """No profiles."""
        yield from ()


class MixedPlugin:
    """Registers :class:`MixedConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        """Register the connector."""
        register(MixedConnector)


def run_mixed(
    tmp_path: Path, home: Path, max_batch_bytes: int | None = None
) -> tuple[Any, list[Any], list[Any]]:
    """One run into the embedded store: (summary figures, stored events, quarantine)."""
    from mpconnect.store.datasets import DatasetStore

    config = make_config(
        tmp_path,
        {"mixed": {"connector": "mixed", "dataset_id": "MIXED", "max_quarantined": "unlimited"}},
        engine={"max_batch_bytes": max_batch_bytes} if max_batch_bytes else None,
    )
    summary = make_engine(config, home, MixedPlugin()).run("mixed")
    stored = list(DatasetStore(home / "embedded.sqlite3").iter_events("MIXED", summary.version_id))
    quarantined = [
        {key: line[key] for key in ("record", "reason", "field")}
        for line in map(orjson.loads, Path(summary.quarantine_file).read_bytes().splitlines())
    ]
    figures = (summary.status, summary.read, summary.imported, summary.quarantined)
    return (figures, summary.duplicates), stored, quarantined


def test_the_accelerated_run_loads_and_quarantines_what_the_python_path_does(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accelerated = run_mixed(tmp_path / "c", home / "c")
    monkeypatch.setenv("MPCONNECT_PURE_PYTHON", "1")
    python_only = run_mixed(tmp_path / "py", home / "py")

    assert accelerated == python_only
    (figures, duplicates), stored, quarantined = accelerated
    assert figures == ("succeeded", 2512, 2505, 7)
    assert duplicates == 100
    assert {line["field"] for line in quarantined} == {
        "distinct_id",
        "time",
        "event",
        "properties.token",
        "$insert_id",
        "properties.n",  # 2**70: not JSON, refused when batched
        None,  # the 1.1 MB event, refused when batched
    }
    assert any(event["event"] == "ORDER PLACED" for event in stored)


def test_batches_cut_by_bytes_hold_the_same_events_either_way(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accelerated = run_mixed(tmp_path / "c", home / "c", max_batch_bytes=65_536)
    monkeypatch.setenv("MPCONNECT_PURE_PYTHON", "1")
    python_only = run_mixed(tmp_path / "py", home / "py", max_batch_bytes=65_536)

    assert accelerated == python_only
    assert accelerated[0][0] == ("succeeded", 2512, 2505, 7)


def test_a_connector_failing_mid_batch_fails_the_run_the_same_way_either_way(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_run(name: str) -> tuple[str, int, str]:
        config = make_config(
            tmp_path / name,
            {
                "mixed": {
                    "connector": "mixed",
                    "dataset_id": "MIXED",
                    "settings": {"fail_after": 1500},
                }
            },
        )
        engine = make_engine(config, home / name, MixedPlugin())
        with pytest.raises(mpconnect.MpconnectError) as failed:
            engine.run("mixed")
        [run] = engine.ledger.list_runs("mixed", 1)
        return type(failed.value).__name__, run["read"], str(failed.value)

    accelerated = failing_run("c")
    monkeypatch.setenv("MPCONNECT_PURE_PYTHON", "1")
    assert failing_run("py") == accelerated
    kind, read, message = accelerated
    assert kind == "RunFailed"
    assert read == 1500
    assert "connector 'mixed' failed while reading events: ConnectionResetError" in message
