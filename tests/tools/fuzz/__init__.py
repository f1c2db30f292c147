"""Schemathesis against a live chatsys: ``python -m tests.tools.fuzz`` (``make fuzz``).

What runs, in order:

1. The runner re-runs itself in a network namespace of its own (``sandbox.py``): only
   loopback, so generated webhook URLs and host names reach nothing off the machine.
2. Inside, ``service.py`` starts the fake OpenAI-compatible server of tests/fakes and
   ``chatsys dev`` on a fresh temporary data dir, as a user starts chatsys: embedded
   Postgres and Redis (or the servers named by ``CHATSYS_TEST_DATABASE_URL`` /
   ``CHATSYS_TEST_REDIS_URL``, relayed into the namespace, in a database of its own),
   migrations, the API, a worker, the local admin key; tasks run on the fake model.
3. ``run.py`` runs ``st run`` on the live ``/openapi.json`` with that key: every
   check, the examples, coverage, fuzzing and stateful phases, a fixed seed. The few
   reports about rules no schema can state are dropped by ``hooks.py`` (each named).
4. Everything started is stopped (``chatsys dev`` stops its children; a child of a
   killed runner dies with it, ``PR_SET_PDEATHSIG``), also on Ctrl-C or a failure,
   and the exit code is schemathesis' (0: no failure).
"""
