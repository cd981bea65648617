"""The ``salesforce`` connector: what a run reads, in which order, and what it yields.

A run logs in, decides from when each stream reads (everything, or on an incremental run
what changed since its cursor: :mod:`mpconnect_salesforce.incremental`), plans its reads (a
``COUNT()`` per query decides Bulk 2.0 or REST and lets the quota guard refuse a run that
would not fit), then streams: Contacts, Leads, Opportunities, Cases, Tasks, then custom
event mappings. Contacts and unconverted Leads become profiles too; they wait in a spool
file until ``people()``, which then adds the owners' open-opportunity totals and the
custom people mappings. A stream's cursor enters the state once its records are all
yielded (Contacts' and Leads' once their profiles are).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from mpconnect import ConfigError, Connector, Event, Partition, Profile, RunContext, SourceError
from mpconnect_salesforce.build import changed_read, gone, gone_reads, sweep
from mpconnect_salesforce.client import SalesforceClient
from mpconnect_salesforce.identity import Identity
from mpconnect_salesforce.incremental import CURSOR_KEYS, Sync, merge_cursors
from mpconnect_salesforce.mappings import (
    CompiledMapping,
    compile_mapping,
    mapping_events,
    mapping_profiles,
    stream_name,
)
from mpconnect_salesforce.opportunities import totals_profiles
from mpconnect_salesforce.partitioning import PartitionSpec, ranged
from mpconnect_salesforce.planning import plan_partitions
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.recall import recall_people, who_changed
from mpconnect_salesforce.rows import Field
from mpconnect_salesforce.settings import EventMapping, PeopleMapping, SalesforceSettings
from mpconnect_salesforce.spool import ProfileSpool
from mpconnect_salesforce.streams import STREAMS, reads_for

__all__ = ["SalesforceConnector"]

_PEOPLE_STREAMS = {"Contact": "contacts", "Lead": "leads"}


_R = TypeVar("_R", Event, Profile)


def _counted(run: Run, records: Iterator[_R]) -> Iterator[_R]:
    """``records``, counted in ``run.yielded`` as each one is taken."""
    for record in records:
        run.yielded += 1
        yield record


@dataclass
class _Plan:
    streams: list[tuple[str, list[Read]]] = field(default_factory=list)
    indexes: list[Read] = field(default_factory=list)
    events: list[CompiledMapping] = field(default_factory=list)
    people: list[CompiledMapping] = field(default_factory=list)

    def reads(self) -> list[tuple[str, Read]]:
        """Every read with the settings key it comes from."""
        out = [(f"objects ({name})", read) for name, reads in self.streams for read in reads]
        out += [("identity", read) for read in self.indexes]
        out += [(m.key, read) for m in (*self.events, *self.people) for read in (m.read, *m.gone)]
        return out


class SalesforceConnector(Connector):
    """Salesforce Contacts, Leads, Opportunities, Cases, Tasks and mapped objects."""

    name: ClassVar[str] = "salesforce"
    description: ClassVar[str] = (
        "Salesforce: Contacts and Leads as people; lead, opportunity, case and task events; "
        "any object by configuration"
    )
    Settings = SalesforceSettings
    requires: ClassVar[tuple[str, ...]] = ("simple_salesforce",)
    install_hint: ClassVar[str | None] = 'pip install "mpconnect[salesforce]"'
    incremental: ClassVar[bool] = True

    settings: SalesforceSettings

    def __init__(self, settings: SalesforceSettings) -> None:
        super().__init__(settings)
        self._run: Run | None = None
        self._plans: dict[str, _Plan] = {}  # by partition key ("": unpartitioned)
        self._events_done = False
        self._indexed: set[str] = set()

    # -- setting up ------------------------------------------------------------------

    def _start(self, ctx: RunContext) -> Run:
        if self._run is None:
            client = SalesforceClient(self.settings, ctx.log, ctx)
            self._run = Run(
                settings=self.settings,
                client=client,
                identity=Identity(self.settings.identity),
                spool=ProfileSpool(ctx.state_dir),
                quarantine=ctx.quarantine,
                log=ctx.log,
                sync=Sync(ctx, timedelta(minutes=self.settings.overlap_minutes)),
            )
        return self._run

    def _stream_names(self) -> list[str]:
        names: list[str] = [name for name in STREAMS if name in self.settings.objects]
        names += [stream_name("events", mapping) for mapping in self.settings.events]
        return names + [stream_name("people", mapping) for mapping in self.settings.people]

    def _compile(self, run: Run, ctx: RunContext) -> _Plan:
        prefix = f"sources.{ctx.source}.settings"
        part = PartitionSpec.of(ctx.partition)
        plan = _Plan(
            streams=[
                (name, reads_for(name, run.sync))
                for name in STREAMS
                if name in self.settings.objects and (part is None or name in part.streams)
            ]
        )
        if part is not None and (part.gte is not None or part.lt is not None):
            # An Id range; REST rows in Id order, so a range read again repeats its order.
            plan.streams = [
                (name, [replace(ranged(read, part), order="Id") for read in reads])
                for name, reads in plan.streams
            ]
        describes: dict[str, dict[str, object]] = {}
        groups: list[tuple[str, Sequence[EventMapping | PeopleMapping], list[CompiledMapping]]] = [
            ("events", self.settings.events, plan.events),
            ("people", self.settings.people, plan.people),
        ]
        for kind, mappings, target in groups:
            for i, mapping in enumerate(mappings):
                if part is not None and (
                    i not in part.events if kind == "events" else not part.people
                ):
                    continue
                key = f"{prefix}.{kind}[{i}]"
                if mapping.object not in describes:
                    describes[mapping.object] = self._describe(run, key, mapping.object)
                compiled = compile_mapping(key, mapping, describes[mapping.object])
                changed_read(compiled.read, compiled.stream, run.sync)
                compiled.gone = gone_reads(compiled.stream, mapping.object, mapping.where, run.sync)
                if part is not None and kind == "events":
                    compiled.read = replace(ranged(compiled.read, part), order="Id")
                target.append(compiled)
        if self.settings.identity == "email":
            needed = {obj for name, _ in plan.streams for obj in STREAMS[name].needs}
            needed |= {obj for m in (*plan.events, *plan.people) for obj in m.references}
            for obj in sorted(needed):
                if _PEOPLE_STREAMS[obj] not in {name for name, _ in plan.streams}:
                    fields = [Field("Id", "id"), Field("Email", "email")]
                    plan.indexes.append(Read(f"{obj} emails", obj, fields, "Email != null"))
        return plan

    def _describe(self, run: Run, key: str, obj: str) -> dict[str, object]:
        try:
            return run.client.describe(obj)
        except SourceError as exc:
            if "NOT_FOUND" in str(exc) or "HTTP 404" in str(exc):
                raise ConfigError(
                    f"{key}.object: no object {obj!r} in this org, or this user cannot read it"
                ) from None
            raise

    def _planned(self, run: Run, ctx: RunContext, compiled: _Plan | None = None) -> _Plan:
        part_key = "" if ctx.partition is None else ctx.partition.key
        if part_key in self._plans:
            return self._plans[part_key]
        plan = compiled or self._compile(run, ctx)
        for key, read in plan.reads():
            if read.all_rows or read.gone:
                continue  # few rows (deleted, gone or touched since the cursor): one REST call
            try:
                read.decide(self.settings, run.client.count(read.object, read.where))
            except SourceError as exc:
                if read.where and key.startswith("sources."):
                    raise ConfigError(f"{key}.where: {exc}") from None
                raise
        reads = [read for _, read in plan.reads()]
        estimate = sum(read.estimated_calls(self.settings) for read in reads)
        detail = ", ".join(read.describe() for read in reads)
        ctx.log.info("Salesforce plan: %s; about %d API calls", detail, estimate)
        run.client.guard.check_plan(estimate, detail)
        self._plans[part_key] = plan
        return plan

    def _read_indexes(self, run: Run, plan: _Plan) -> None:
        """Remember the emails of people no stream of this read reads (identity = "email")."""
        for read in plan.indexes:
            if read.object in self._indexed:
                continue
            for row in run.rows(read):
                run.identity.person(row["Id"], row.get("Email"))
            self._indexed.add(read.object)

    # -- the connector contract ------------------------------------------------------

    def check(self, ctx: RunContext) -> str:
        """Log in, validate every object, field and filter, and report the org and its quota.

        :raises SourceError: when the login fails or an object cannot be read.
        :raises ConfigError: naming the settings key of an unknown object, field or filter.
        """
        run = self._start(ctx)
        org = run.client.query("SELECT Id, Name FROM Organization", "the organization")
        readable = {
            o["name"]
            for o in run.client.describe_global().get("sobjects", [])
            if o.get("queryable")
        }
        plan = self._compile(run, ctx)
        for name, reads in plan.streams:
            for read in reads:
                if read.object not in readable:
                    raise SourceError(
                        f"sources.{ctx.source}.settings.objects: {name!r} reads "
                        f"{read.object}, which this Salesforce user cannot query"
                    )
                fields = {f["name"] for f in run.client.describe(read.object)["fields"]}
                for f in read.fields:
                    if "." not in f.path and f.path not in fields:
                        raise SourceError(
                            f"sources.{ctx.source}.settings.objects: {name!r} needs "
                            f"{read.object}.{f.path}, which this user cannot read "
                            "(check field-level security)"
                        )
        plan = self._planned(run, ctx, plan)
        org_row = org[0] if org else {}
        counts = ", ".join(f"{read.object} ({read.count})" for _, read in plan.reads())
        return (
            f"Salesforce org {org_row.get('Id')} ({org_row.get('Name')}); API usage "
            f"{run.client.guard.describe()} today; can read {counts or 'nothing configured'}"
        )

    def _begin(self, ctx: RunContext) -> tuple[Run, _Plan]:
        """Log in, decide from when each stream reads, and plan the reads."""
        run = self._start(ctx)
        if not run.sync.started:
            run.sync.start(run.client.server_now(), self._stream_names(), self.settings.identity)
            if run.sync.incremental and self.settings.identity == "email":
                self._recall(run, ctx)
        plan = self._planned(run, ctx)
        self._read_indexes(run, plan)
        return run, plan

    def _recall(self, run: Run, ctx: RunContext) -> None:
        """Under ``identity = "email"``: recall the people an incremental run does not read;
        read everything when a person's distinct_id changed."""
        known = recall_people(run, ctx)
        since = {
            obj: run.sync.changed_since(name)
            for name, obj in (("contacts", "Contact"), ("leads", "Lead"))
            if name in self.settings.objects
        }
        why = who_changed(run, known, since)
        if why is not None:
            run.sync.read_everything(f'{why} (identity = "email")')
            run.identity = Identity(self.settings.identity)

    def partitions(self, ctx: RunContext) -> list[Partition]:
        """A full read: the people partition and ``Id`` ranges of Cases, Tasks and each
        ``events`` mapping (see :mod:`mpconnect_salesforce.partitioning`). Otherwise one."""
        if ctx.partition is not None:
            return [ctx.partition]  # called again inside a partition: read only that one
        if not ctx.full_refresh:
            return [Partition("all")]
        try:
            return plan_partitions(self.settings, self._start(ctx))
        finally:
            self.close()  # the partitions log in again, each in its own process perhaps

    @classmethod
    def merge_states(cls, states: list[tuple[Partition, dict[str, Any]]]) -> dict[str, Any]:
        """The state of a partitioned full read: each stream's earliest safe cursor over
        the partitions that read it (see :func:`~mpconnect_salesforce.incremental.
        merge_cursors`); everything else (``identity``) must be the same in all."""
        rest = [(p, {k: v for k, v in s.items() if k not in CURSOR_KEYS}) for p, s in states]
        merged = super().merge_states(rest)
        merged.update(merge_cursors([state for _, state in states]))
        return merged

    def events(self, ctx: RunContext) -> Iterator[Event]:
        """Yield every event: standard streams in order, then the event mappings.

        :raises QuotaExceeded: (``paused: api quota``) when the quota guard stops the run;
            the state keeps the cursors of what was read completely.
        """
        run, plan = self._begin(ctx)
        for name, reads in plan.streams:
            gone(run, name, [read for read in reads if read.gone])
            yield from _counted(run, STREAMS[name].events(run, [r for r in reads if not r.gone]))
            if name not in _PEOPLE_STREAMS.values():
                sweep(run, name)
                run.sync.commit(name, complete=True)
        for compiled in plan.events:
            gone(run, compiled.stream, compiled.gone)
            yield from _counted(run, mapping_events(run, compiled))
            sweep(run, compiled.stream)
            run.sync.commit(compiled.stream, complete=True)
        part = PartitionSpec.of(ctx.partition)
        if part is None or part.people:
            self._events_done = True
        self._log_merged(run, ctx)
        if run.skipped:
            ctx.log.warning("Salesforce: %d rows quarantined so far", run.skipped)

    @staticmethod
    def _log_merged(run: Run, ctx: RunContext) -> None:
        if run.merged_leads:
            ctx.log.info(
                "Salesforce: %d unconverted leads share a Contact's email; their "
                "profile is the Contact's",
                run.merged_leads,
            )

    def people(self, ctx: RunContext) -> Iterator[Profile]:
        """Yield the Contact and unconverted Lead profiles, the owners' open-opportunity
        totals, then the people mappings (in the people partition of a partitioned read)."""
        part = PartitionSpec.of(ctx.partition)
        if part is not None and not part.people:
            return
        run, plan = self._begin(ctx)
        events_done = self._events_done
        if not events_done:
            for name, reads in plan.streams:
                if name in _PEOPLE_STREAMS.values():
                    for _ in STREAMS[name].events(run, [r for r in reads if not r.gone]):
                        pass
            self._log_merged(run, ctx)
        yield from run.spool.replay()
        if events_done:
            for name, _ in plan.streams:
                if name in _PEOPLE_STREAMS.values():
                    sweep(run, name)
                    run.sync.commit(name, complete=True)
        yield from totals_profiles(run)
        for compiled in plan.people:
            gone(run, compiled.stream, compiled.gone)
            yield from _counted(run, mapping_profiles(run, compiled))
            sweep(run, compiled.stream)
            run.sync.commit(compiled.stream, complete=True)

    def close(self) -> None:
        """Close the HTTP session and delete the profile spool."""
        if self._run is not None:
            self._run.spool.close()
            self._run.client.close()
            self._run = None
        self._plans.clear()
        self._indexed.clear()
