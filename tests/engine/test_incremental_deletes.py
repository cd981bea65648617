"""Deleted objects in incremental runs without versions: their profiles get ``$delete``
only with ``delete_profiles = true``; their events stay (``/import`` cannot delete)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from engine_support import make_config, make_engine

import mpconnect
from mpconnect.sink import ImportResult, Sink, VersionInfo


class CapturingSink(Sink):
    """A sink without versions that keeps every record it is sent."""

    name = "capturing"
    versioned = False
    default_token = "test-token"
    sent: ClassVar[list[dict[str, Any]]] = []

    def create_version(self, dataset_id: str) -> VersionInfo:
        return VersionInfo("0", True, True)

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        return []

    def import_batch(
        self, kind: Any, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        type(self).sent.extend(orjson.loads(payload))
        return ImportResult(count)

    def publish(self, dataset_id: str, version_id: str) -> None:
        """Nothing to publish."""

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Nothing to delete."""


class MembersConnector(mpconnect.Connector):
    """Members m0..m4 as profiles; from the second run on, m3 is gone."""

    name = "members"
    incremental = True

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        yield from ()

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        if ctx.full_refresh:
            for index in range(5):
                yield mpconnect.Profile(
                    f"m{index}", set={"n": index}, object_id=f"m{index}", stream="members"
                )
        else:
            ctx.deleted("members", "m3")
        ctx.state["seen"] = True


class Plugin:
    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(MembersConnector)

    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type], None]) -> None:
        register(CapturingSink)


@pytest.mark.parametrize("delete_profiles", [False, True])
def test_deleted_profiles_get_delete_only_when_asked(
    tmp_path: Path, home: Path, delete_profiles: bool
) -> None:
    CapturingSink.sent = []
    config = make_config(
        tmp_path,
        {
            "members": {
                "connector": "members",
                "dataset_id": "MEMBERS",
                "delete_profiles": delete_profiles,
            }
        },
        mixpanel={"sink": "capturing"},
    )
    engine = make_engine(config, home, Plugin())
    assert engine.run("members").imported == 5
    CapturingSink.sent = []
    second = engine.run("members")
    assert second.sync == "incremental" and (second.objects or {})["deleted"] == 1
    if delete_profiles:
        assert CapturingSink.sent == [{"$token": "test-token", "$distinct_id": "m3", "$delete": ""}]
    else:
        assert CapturingSink.sent == []
