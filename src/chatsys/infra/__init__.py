"""Adapters to the outside world: settings, logging, database, Redis, queue, embedded servers."""
