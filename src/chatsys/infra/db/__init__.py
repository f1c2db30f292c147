"""Postgres through SQLAlchemy 2 (asyncio) on asyncpg."""
