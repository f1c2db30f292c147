"""Webhook HTTP: an SSRF-safe sender, and the URL guard that resolves host names.

The host is resolved once per attempt and every address it resolves to is checked
(``chatsys.domain.webhooks.urls``); the connection is then made to those checked
addresses only (a pinned network backend under httpcore: no second DNS lookup
between check and connect, so DNS rebinding gains nothing), while the request
keeps the URL's host in its ``Host`` header and, for https, in SNI and the
certificate check. Redirects are never followed, timeouts are short, and at most
``max_response_bytes`` of an answer are read.

Connections are kept alive per receiver: one httpcore pool per origin *and* set of
checked addresses (at most ``connections_per_pool`` connections, idle ones closed
after ``keepalive_expiry`` s, the least recently used idle pools closed beyond
``max_pools``). Every attempt still resolves and checks the host first; a pooled
connection is reused only when this attempt's checked addresses are the ones it was
made to, so a reused connection never reaches an address this attempt did not check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import select
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpcore

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.webhooks.model import SendResult
from chatsys.domain.webhooks.urls import (
    DEFAULT_MAX_URL_LENGTH,
    IPAddress,
    WebhookTarget,
    check_address,
    forbidden_reason,
    parse_webhook_url,
)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Appended to a refusal that allowing private networks would lift (never to metadata,
# multicast, ... which stay refused): the newcomer's webhook to localhost.
PRIVATE_NETWORKS_HINT = (
    "; to let webhooks reach loopback and private networks (local development), "
    "set CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true"
)


async def system_resolve(host: str, port: int) -> Sequence[str]:
    """Every address ``host`` resolves to (getaddrinfo in the loop's executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Unresolvable(Exception):
    """The host name did not resolve (now): worth trying again later."""


class AddressVetter:
    """Applies the URL rules, resolves the host, and checks every address."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        max_url_length: int = DEFAULT_MAX_URL_LENGTH,
        resolve: Resolver = system_resolve,
        resolve_timeout: float = 5.0,
    ) -> None:
        self._allow_private = allow_private
        self._max_url_length = max_url_length
        self._resolve = resolve
        self._resolve_timeout = resolve_timeout

    async def vet(self, url: str) -> tuple[WebhookTarget, list[IPAddress]]:
        """The parsed URL and the addresses it may be sent to; ``InvalidInput`` (naming
        the reason) when it must not be called, ``Unresolvable`` when DNS fails."""
        target = parse_webhook_url(url, max_length=self._max_url_length)
        if target.address is not None:
            self._check(target.address)
            return target, [target.address]
        try:
            async with asyncio.timeout(self._resolve_timeout):
                raw = await self._resolve(target.host, target.port)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or "failed"
            raise Unresolvable(f"could not resolve {target.host!r}: {reason}") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in raw]
        if not addresses:
            raise Unresolvable(f"could not resolve {target.host!r}: no address")
        for address in addresses:  # every one: a mixed answer is refused as a whole
            self._check(address, host=target.host)
        return target, addresses

    def _check(self, address: IPAddress, *, host: str | None = None) -> None:
        try:
            check_address(address, allow_private=self._allow_private, host=host)
        except InvalidInput as exc:
            if self._allow_private or forbidden_reason(address, allow_private=True) is not None:
                raise
            raise InvalidInput(exc.detail + PRIVATE_NETWORKS_HINT) from None


class ResolvingUrlGuard:
    """The ``UrlGuard`` port for creation time: URL rules, and the address rules on every
    address the host resolves to now. A host that does not resolve yet is accepted (it
    is checked again at every send)."""

    def __init__(self, vetter: AddressVetter) -> None:
        self._vetter = vetter

    async def check(self, url: str) -> None:
        try:
            await self._vetter.vet(url)
        except Unresolvable:
            return


def _readable(sock: socket.socket | None) -> bool:
    """Whether reading ``sock`` would return at once (data, or the end of a connection
    the peer closed); a closed socket counts as readable (its end is all it has)."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _SocketKnownStream(httpcore.AsyncNetworkStream):
    """A connection's stream that looks its socket up once.

    Before each request httpcore asks every pooled connection whether the peer closed
    it (``is_readable``); AnyIO answers that by building all of the socket's attributes,
    a few system calls each, every time: a quarter of an attempt's CPU with eight
    connections kept alive (``python -m bench --scenario webhooks``)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        upgraded = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _SocketKnownStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the vetted addresses, in order, whatever host httpcore asks for."""

    def __init__(
        self, addresses: Sequence[IPAddress], inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._addresses = list(addresses)
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception = httpcore.ConnectError("no address to connect to")
        for address in self._addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _SocketKnownStream(stream)
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


PoolKey = tuple[str, str, int, tuple[str, ...]]  # scheme, host, port, checked addresses


class HttpWebhookSender:
    """The ``WebhookSender`` port over httpcore, connections kept alive per receiver."""

    def __init__(
        self,
        vetter: AddressVetter,
        *,
        connect_timeout: float = 5.0,
        timeout: float = 15.0,
        max_response_bytes: int = 64 * 1024,
        user_agent: str = "chatsys-webhooks",
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        connections_per_pool: int = 8,
        keepalive_expiry: float = 30.0,
        max_pools: int = 256,
    ) -> None:
        self._vetter = vetter
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes
        self._user_agent = user_agent
        self._ssl_context = ssl_context
        self._backend = network_backend
        self._connections_per_pool = connections_per_pool
        self._keepalive_expiry = keepalive_expiry
        self._max_pools = max_pools
        self._pools: OrderedDict[PoolKey, httpcore.AsyncConnectionPool] = OrderedDict()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            with contextlib.suppress(Exception):
                await pool.aclose()

    async def _pool(
        self, target: WebhookTarget, addresses: Sequence[IPAddress]
    ) -> httpcore.AsyncConnectionPool:
        key = (target.scheme, target.host, target.port, tuple(str(a) for a in addresses))
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        pool = httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=self._connections_per_pool,
            keepalive_expiry=self._keepalive_expiry,
            retries=0,
            network_backend=PinnedBackend(addresses, self._backend),
        )
        self._pools[key] = pool
        for old_key, old in list(self._pools.items()):
            if len(self._pools) <= self._max_pools:
                break
            if all(c.is_idle() for c in old.connections):  # never one in use
                del self._pools[old_key]
                with contextlib.suppress(Exception):
                    await old.aclose()
        return pool

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> SendResult:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            target, addresses = await self._vetter.vet(url)
        except InvalidInput as refused:
            return SendResult(None, elapsed(), f"refused: {refused.detail}", retryable=False)
        except Unresolvable as exc:
            return SendResult(None, elapsed(), str(exc))
        try:
            async with asyncio.timeout(self._timeout):
                status = await self._post(target, addresses, headers, body)
        except (
            TimeoutError,
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            ssl.SSLError,
            OSError,
        ) as exc:
            return SendResult(None, elapsed(), self._failure(exc))
        if 200 <= status < 300:
            return SendResult(status, elapsed())
        if 300 <= status < 400:
            return SendResult(status, elapsed(), f"HTTP {status}: redirects are not followed")
        return SendResult(status, elapsed(), f"HTTP {status}")

    def _failure(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._timeout:g} s"
        if isinstance(exc, httpcore.TimeoutException):
            return f"timed out ({type(exc).__name__})"
        if isinstance(exc, httpcore.ConnectError):
            return f"could not connect: {exc or 'refused'}"
        return f"{type(exc).__name__}: {exc}"

    async def _post(
        self,
        target: WebhookTarget,
        addresses: Sequence[IPAddress],
        headers: dict[str, str],
        body: bytes,
    ) -> int:
        request_headers = [
            (b"Host", target.host_header.encode()),
            (b"User-Agent", self._user_agent.encode()),
            (b"Content-Type", b"application/json"),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        url = httpcore.URL(
            scheme=target.scheme.encode(),
            host=target.host.encode(),
            port=target.port,
            target=target.target.encode(),
        )
        timeouts = {
            "connect": self._connect_timeout,
            "read": self._timeout,
            "write": self._timeout,
            "pool": self._connect_timeout,
        }
        pool = await self._pool(target, addresses)
        async with pool.stream(
            b"POST", url, headers=request_headers, content=body, extensions={"timeout": timeouts}
        ) as response:
            read = 0
            async for chunk in response.aiter_stream():
                read += len(chunk)
                if read >= self._max_response_bytes:
                    break  # enough: the rest is dropped with the connection (not reused)
            return int(response.status)
