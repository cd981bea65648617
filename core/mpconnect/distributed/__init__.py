"""Running sources on Celery workers with a shared PostgreSQL database (``[distributed]``).

The room between the scheduler and the status pages: the shared schema
(:mod:`.schema`), the run ledger (:class:`PostgresRunLedger`), locks that die with their
holder (:class:`PostgresSourceLock`, :class:`LeaderLock`), the Celery app and its task
(:mod:`.app`, :mod:`.tasks`), dispatching (:mod:`.dispatch`). Needs the extra
``mpconnect[distributed]`` (celery with redis, psycopg 3); single-machine mode does not
import it.
"""
