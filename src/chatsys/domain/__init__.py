"""The domain: entities, value objects, use cases and the ports they need.

Pure Python. Nothing here imports a web framework, a database driver, a queue,
an LLM client or a logging library (import-linter enforces it).
"""
