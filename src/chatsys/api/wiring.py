"""How a route gets the one use case it calls.

Each feature declares a ``Provider`` per object its routes need, next to an
``Annotated`` alias (``SubmitTaskDep = Annotated[SubmitTask, Depends(submit_task)]``).
The composition root (``chatsys.bootstrap.api``) fills each app's ``Wiring`` when
the app starts; a provider that nothing filled stops the start-up, naming it, rather
than failing the first request that needs it. No route and no middleware ever sees
the whole wiring: a route gets the one object its alias names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from starlette.requests import HTTPConnection

T = TypeVar("T")


class Provider(Generic[T]):
    """A dependency filled per app by the composition root. (No ``__slots__``: a
    ``Provider[X](...)`` keeps ``__orig_class__``, which tests read to see what a
    route gets.)"""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Provider({self.name!r})"

    # ``async``: FastAPI runs a plain ``def`` dependency in a thread pool.
    async def __call__(self, connection: HTTPConnection) -> T:
        wiring: Wiring = connection.app.state.wiring
        return wiring.get(self)


class Wiring:
    """The objects one app's providers stand for."""

    def __init__(self) -> None:
        self._values: dict[Provider[Any], Any] = {}

    def provide(self, provider: Provider[T], value: T) -> None:
        if provider in self._values:
            raise RuntimeError(f"{provider.name} is provided twice")
        self._values[provider] = value

    def get(self, provider: Provider[T]) -> T:
        try:
            return cast(T, self._values[provider])
        except KeyError:
            raise RuntimeError(f"nothing provides {provider.name}: is the app started?") from None

    def getter(self, provider: Provider[T]) -> Callable[[], T]:
        """For a middleware, built before the app starts: what to call per request."""
        return lambda: self.get(provider)

    def missing(self, needed: set[Provider[Any]]) -> list[str]:
        return sorted(p.name for p in needed if p not in self._values)

    def clear(self) -> None:
        self._values.clear()
