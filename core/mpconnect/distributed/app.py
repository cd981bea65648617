"""The Celery app: Redis as the broker, settings chosen so that a run is never lost and
never done twice (see docs/distributed.md, "Celery settings and why").

Task results are not kept by Celery (``task_ignore_result``): each dispatch's outcome is
written by the task into the shared PostgreSQL database (``dispatches``), next to the
run ledger, where ``mpconnect dispatch --wait`` and ``mpconnect runs`` read it. It thus
outlives a Redis restart, and needs no further dependency (Celery's database result
backend needs SQLAlchemy).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from mpconnect.config import Config, DistributedConfig
from mpconnect.errors import ConfigError

#: The queue every mpconnect task goes to.
QUEUE = "mpconnect"
#: The task that runs one whole source.
RUN_SOURCE = "mpconnect.run_source"
#: The task that reads one partition of a run (see :mod:`mpconnect.distributed.partitions`).
RUN_PARTITION = "mpconnect.run_partition"
#: Added to ``[engine] max_run_time`` to make the broker's visibility timeout: a message
#: is redelivered only when no run of it can still be going.
VISIBILITY_MARGIN = 3600.0


def distributed_settings(config: Config) -> DistributedConfig:
    """The ``[distributed]`` table, or ConfigError saying how to add it."""
    if config.distributed is None:
        where = config.path or "the configuration"
        raise ConfigError(
            f"{where}: distributed: this command needs a [distributed] table; add\n"
            "  [distributed]\n"
            '  broker = "${MPCONNECT_BROKER_URL}"      # redis:// or rediss://\n'
            '  database = "${MPCONNECT_DATABASE_URL}"  # postgresql://\n'
            "and export both variables (see docs/distributed.md)"
        )
    return config.distributed


def celery_settings(config: Config) -> dict[str, Any]:
    """Celery's configuration for ``config`` (the same in workers and dispatchers)."""
    broker = distributed_settings(config).broker.get_secret_value()
    visibility = int(config.engine.max_run_time + VISIBILITY_MARGIN)
    return {
        "broker_url": broker,
        "broker_connection_retry_on_startup": True,
        # Redelivery of a message whose worker vanished (no ack): only after this many
        # seconds, so never while a run of it may still be going.
        "broker_transport_options": {"visibility_timeout": visibility},
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        # Acknowledge a message after its run, not before: a worker that dies mid-run
        # leaves it to be delivered again.
        "task_acks_late": True,
        # ... also when the pool process running it was killed (kill -9, out of memory).
        "task_reject_on_worker_lost": True,
        # One message per process at a time: a busy worker holds no runs others could do.
        "worker_prefetch_multiplier": 1,
        # A broker connection lost mid-run does not cancel the run: it needs no broker,
        # and the task is idempotent when the unacknowledged message comes back.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Events for Flower and `celery events`.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # mpconnect's JSON log handler stays in place.
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


def make_app(config: Config) -> Celery:
    """A Celery app for ``config`` with mpconnect's task registered."""
    from mpconnect.distributed.tasks import register_tasks

    app = Celery("mpconnect", set_as_current=False)
    app.conf.update(celery_settings(config))
    register_tasks(app)
    return app
