"""``streaming``: live task events over WebSocket, each figure against a baseline in the same run.

Processes: the fake OpenAI-compatible provider (``python -m tests.fakes.openai_compat``,
its own process, so its pacing never shares a GIL with the clients), one
``chatsys api`` and, while tasks run, one ``chatsys worker``; Postgres and Redis
as for the other scenarios. Tasks have one agent (``"agents": ["developer"]``).

(a) Token relay latency. The fake stamps every streamed token with the wall clock
when it leaves (``stamp_tokens``: each word is ``"<time.time_ns()> "``) and waits
``--relay-delay`` between tokens, so tokens do not coalesce. The path measured:
provider -> worker (LiteLLM, agent, group-committed ``message.delta`` in Postgres,
Redis publish) -> API process (pub/sub hub, subscriber buffer) -> WebSocket client.
Latency of a token = its receipt by the client - its stamp (a coalesced delta
counts every token in it with its own stamp). Baseline: the bench process reads
the same fake's ``/v1/chat/completions`` SSE stream directly with httpx (same
tokens, same stamping, same pacing). Rounds alternate chatsys and baseline.

(b) Fan-out. One task streams ``--fanout-tokens`` tokens at ``--fanout-rate``
tokens/s to 1, 100 and 1,000 (``--subscribers``) WebSocket subscribers of
``/v1/tasks/{id}/stream`` on the one API process. The task is submitted with no
worker running, every subscriber connects and receives the replay of
``task.created`` (so its live subscription is active), then a worker process is
started and runs the task. Reported per subscriber count: delivered frames/s
(live frames received by all subscribers / time from the first live event's
``ts`` to the last receipt) and the p50/p99 delay (receipt - event ``ts``, the
event's creation time in Postgres). Baseline: the same clients on a trivial
uvicorn + FastAPI broadcaster (``baseline_app`` below) that sends the same
number of frames, of the same size, at the rate the chatsys task produced them,
to every connected client in a plain loop (one pre-encoded frame per event,
stamped when made). It is the least any Python ASGI server needs to push that
many frames to that many sockets on this machine, so the ratio isolates what
chatsys adds (Postgres, Redis, hub, per-subscriber buffers and pumps). The
1-subscriber chatsys row is printed as well.

(c) Memory per idle WebSocket connection: ``--idle`` connections are opened to the
stream of a queued task (no worker runs, the task waits), then as many again; the
API process' RSS growth over the second batch, divided by its size. The first
batch pays the one-off costs (lazy imports, the database pool growing, first
buffers) and keeps its memory, so the second is neither inflated by them nor
flattered by reusing freed memory. Baseline: the same for ``baseline_app``'s bare
FastAPI WebSocket endpoint that accepts and waits, under uvicorn with the same
settings.

The client: 1,000 ``websockets`` clients in one process would spend more CPU on
the client side than the server under test spends sending, on a 2-core machine
shared with the API, worker, Postgres and Redis. So the bench uses a lean client
(``_Ws``): an ``asyncio.Protocol`` that does the HTTP upgrade, parses the
server's unmasked frames, records (receipt time, payload) per text frame and
answers ping and close; JSON is decoded after the run. One process, no threads:
spreading clients over subprocesses would only add processes competing for the
same 2 cores. CPU per frame of the clients (this process) and of the server
process are reported for each fan-out run, so a client-bound figure shows. The
open-file limit is raised (up to the hard limit) before any process is started;
the children inherit it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from fastapi import FastAPI, WebSocket

from bench.startup import clean_env, free_port, process, say, wait_ready

Table = dict[str, dict[str, float]]
CONNECT_CONCURRENCY = 64  # handshakes in flight while opening many connections
STAMP = re.compile(rb"\d{19}")
KIB = 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _row(ours: float, theirs: float) -> dict[str, float]:
    return {"chatsys": ours, "baseline": theirs, "ratio": ours / theirs if theirs else 0.0}


# -- a lean WebSocket client ----------------------------------------------------------------


class _Ws(asyncio.Protocol):
    """One client connection: the upgrade, then server frames (which are never masked).
    Text frames are kept as (receipt time, payload); pings are answered; a close is
    answered and recorded."""

    def __init__(self, host: str, path: str, *, keep: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()
        self.frames: list[tuple[float, bytes]] = []
        self._host = host
        self._path = path
        self._keep = keep
        self._buf = bytearray()
        self._upgraded = False
        self._partial = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(RuntimeError(f"upgrade refused: {bytes(buf[: end + 4])!r}"))
                return
            del buf[: end + 4]
            self._upgraded = True
            self.opened.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4]), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            self._frame(first & 0x0F, bool(first & 0x80), payload, now)
        del buf[:pos]

    def _frame(self, opcode: int, fin: bool, payload: bytes, now: float) -> None:
        if opcode in (0x1, 0x0):
            if not fin or self._partial:
                self._partial += payload
                if not fin:
                    return
                payload, self._partial = bytes(self._partial), bytearray()
            if self._keep:
                self.frames.append((now, payload))
        elif opcode == 0x9:
            self._send(0xA, payload)
        elif opcode == 0x8:
            code = int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005
            self._send(0x8, payload[:2])
            if not self.closed.done():
                self.closed.set_result(code)
            if self._transport is not None:
                self._transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the upgrade: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(1006)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def _open(port: int, path: str, *, keep: bool = True) -> _Ws:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: _Ws(f"127.0.0.1:{port}", path, keep=keep), "127.0.0.1", port
    )
    await asyncio.wait_for(client.opened, 30)
    return client


async def _open_many(count: int, port: int, path: str, *, keep: bool = True) -> list[_Ws]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> _Ws:
        async with gate:
            return await _open(port, path, keep=keep)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _closed(clients: list[_Ws], within: float) -> list[int]:
    return list(await asyncio.wait_for(asyncio.gather(*(c.closed for c in clients)), within))


def _abort_all(clients: list[_Ws]) -> None:
    for client in clients:
        client.abort()


# -- the baseline server ------------------------------------------------------------------------

baseline_app = FastAPI()
_subscribers: set[WebSocket] = set()


@baseline_app.get("/readyz")
async def _ready() -> dict[str, str]:
    return {"status": "ready"}


@baseline_app.websocket("/ws")
async def _subscriber(websocket: WebSocket) -> None:
    """Accept, then wait for the client to go (receiving and dropping its frames)."""
    await websocket.accept()
    _subscribers.add(websocket)
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        _subscribers.discard(websocket)


@baseline_app.post("/broadcast")
async def _broadcast(body: dict[str, Any]) -> dict[str, int]:
    """Once ``expect`` clients are connected, send them ``events`` frames of about ``size``
    bytes every ``interval`` seconds (each frame encoded once, stamped when made), then
    close them with 1000."""
    await _until(lambda: len(_subscribers) >= int(body["expect"]), 30, "subscribers")
    targets = list(_subscribers)
    asyncio.get_running_loop().create_task(
        _emit(targets, int(body["events"]), float(body["interval"]), int(body["size"]))
    )
    return {"subscribers": len(targets)}


async def _emit(targets: list[WebSocket], events: int, interval: float, size: int) -> None:
    start = time.monotonic()
    template = {"task_id": "00000000-0000-0000-0000-000000000000", "type": "message.delta"}
    for seq in range(1, events + 1):
        frame = {**template, "seq": seq, "data": {"text": ""}, "ts": datetime.now(UTC)}
        pad = max(0, size - len(orjson.dumps(frame)))
        frame["data"] = {"text": "x" * pad}
        text = orjson.dumps(frame).decode()
        for websocket in targets:
            with contextlib.suppress(Exception):
                await websocket.send_text(text)
        await asyncio.sleep(max(0.0, start + seq * interval - time.monotonic()))
    for websocket in targets:
        with contextlib.suppress(Exception):
            await websocket.close(1000)


# -- processes -----------------------------------------------------------------------------------


def _raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < wanted:
        say(f"streaming: open-file limit is {soft}, below the {wanted} wanted")


@dataclass
class _Setup:
    database_url: str
    redis_url: str
    work: Path
    fake_port: int
    api_port: int
    base_port: int
    api_env: dict[str, str] = field(default_factory=dict)
    api_pid: int = 0
    base_pid: int = 0

    @property
    def fake_url(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}"

    @contextlib.contextmanager
    def worker(self) -> Iterator[subprocess.Popen[bytes]]:
        argv = [sys.executable, "-m", "chatsys", "worker"]
        with process(argv, self.api_env, self.work / "worker.log") as proc:
            yield proc


async def _control(http: httpx.AsyncClient, setup: _Setup, action: str, **args: Any) -> None:
    answer = await http.post(f"{setup.fake_url}/_control/{action}", json=args)
    answer.raise_for_status()


async def _submit(http: httpx.AsyncClient, setup: _Setup, text: str) -> str:
    answer = await http.post(
        f"http://127.0.0.1:{setup.api_port}/v1/tasks",
        json={"input": text, "agents": ["developer"]},
    )
    if answer.status_code >= 300:
        raise RuntimeError(f"POST /v1/tasks answered {answer.status_code}: {answer.text[:300]}")
    task_id: str = answer.json()["id"]
    return task_id


def _rss(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss)


# -- (c) memory per idle connection -------------------------------------------------------------


async def _idle_memory(pid: int, port: int, path: str, count: int) -> float:
    """Bytes of RSS per idle connection: the growth from ``count`` open connections to
    twice as many, so one-off costs (imports, the database pool, first buffers) are
    paid by the first batch and freed memory is not reused by the measured one."""
    first = await _open_many(count, port, path, keep=False)
    await asyncio.sleep(2.0)
    before = _rss(pid)
    second = await _open_many(count, port, path, keep=False)
    await asyncio.sleep(2.0)
    after = _rss(pid)
    alive = sum(not c.closed.done() for c in first + second)
    _abort_all(first + second)
    await asyncio.sleep(1.0)
    if alive != 2 * count:
        raise RuntimeError(f"only {alive} of {2 * count} idle connections stayed open")
    return (after - before) / count


async def _chatsys_idle(setup: _Setup, pid: int, count: int) -> float:
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await _submit(http, setup, "an idle task nobody runs")
        per = await _idle_memory(pid, setup.api_port, f"/v1/tasks/{task_id}/stream", count)
        cancel = f"http://127.0.0.1:{setup.api_port}/v1/tasks/{task_id}/cancel"
        (await http.post(cancel)).raise_for_status()  # the worker started later skips it
    return per


# -- (a) token relay latency ---------------------------------------------------------------------


def _token_latencies(frames: list[tuple[float, bytes]]) -> list[float]:
    out = []
    for received, raw in frames:
        event = orjson.loads(raw)
        if event["type"] != "message.delta":
            continue
        for stamp in STAMP.findall(event["data"]["text"].encode()):
            out.append((received - int(stamp) / 1e9) * 1000)
    return out


async def _relay_chatsys(http: httpx.AsyncClient, setup: _Setup, tokens: int) -> list[float]:
    await _control(http, setup, "queue_reply", text=" ".join(["token"] * tokens))
    task_id = await _submit(http, setup, "relay latency")
    client = await _open(setup.api_port, f"/v1/tasks/{task_id}/stream")
    code = (await _closed([client], 120))[0]
    if code != 1000:
        raise RuntimeError(f"task stream closed with {code}")
    latencies = _token_latencies(client.frames)
    if len(latencies) != tokens:
        raise RuntimeError(f"{len(latencies)} of {tokens} stamped tokens came over the stream")
    return latencies


async def _relay_direct(http: httpx.AsyncClient, setup: _Setup, tokens: int) -> list[float]:
    await _control(http, setup, "queue_reply", text=" ".join(["token"] * tokens))
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "relay latency"}]}  # fmt: skip
    out: list[float] = []
    url = f"{setup.fake_url}/v1/chat/completions"
    async with http.stream("POST", url, json=body) as answer:
        async for line in answer.aiter_lines():
            received = time.time()
            if not line.startswith("data: {"):
                continue
            for choice in orjson.loads(line[6:]).get("choices", []):
                text = choice.get("delta", {}).get("content") or ""
                for stamp in STAMP.findall(text.encode()):
                    out.append((received - int(stamp) / 1e9) * 1000)
    if len(out) != tokens:
        raise RuntimeError(f"{len(out)} of {tokens} stamped tokens came from the provider")
    return out


async def _relay(setup: _Setup, rounds: int, tokens: int, delay: float) -> Table:
    mine: list[float] = []
    theirs: list[float] = []
    async with httpx.AsyncClient(timeout=60) as http:
        # The provider's first token comes 0.3 s after the request: the WebSocket is
        # subscribed by then, so every token is relayed live (never replayed).
        await _control(http, setup, "configure", latency=0.3, chunk_delay=delay,
                       stamp_tokens=True)  # fmt: skip
        await _relay_chatsys(http, setup, 5)  # warm-up: worker, LiteLLM, pools
        await _relay_direct(http, setup, 5)
        for index in range(rounds):
            say(f"streaming (a) round {index + 1}/{rounds}: {tokens} tokens, {delay * 1000:g} ms "
                "apart, through chatsys and direct")  # fmt: skip
            mine += await _relay_chatsys(http, setup, tokens)
            theirs += await _relay_direct(http, setup, tokens)
    p50, b50 = statistics.median(mine), statistics.median(theirs)
    return {
        "(a) token latency, p50 (ms)": _row(p50, b50),
        "(a) token latency, p99 (ms)": _row(percentile(mine, 99), percentile(theirs, 99)),
        "(a) added by chatsys, p50 (ms)": {"chatsys": p50 - b50, "baseline": 0.0,
                                           "ratio": 0.0},
        "(a) tokens measured (each side)": {"chatsys": float(len(mine)),
                                            "baseline": float(len(theirs)), "ratio": 1.0},
    }  # fmt: skip


# -- (b) fan-out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Delivery:
    frames_per_s: float
    p50_ms: float
    p99_ms: float
    events: int  # live events of the task (per subscriber)
    span_s: float  # from the first live event's ts to the last event's ts
    frame_bytes: float
    client_us: float = 0.0  # CPU of the bench's clients per frame received (µs)
    server_us: float = 0.0  # CPU of the server process per frame delivered (µs)


def _delivery(clients: list[_Ws], since: float) -> _Delivery:
    delays: list[float] = []
    first_ts = last_ts = last_receipt = 0.0
    events = 0
    sizes = 0
    for index, client in enumerate(clients):
        live = 0
        for received, raw in client.frames:
            event = orjson.loads(raw)
            ts = datetime.fromisoformat(event["ts"]).timestamp()
            if ts < since:
                continue  # the replay before the run
            live += 1
            sizes += len(raw)
            delays.append((received - ts) * 1000)
            first_ts = min(first_ts or ts, ts)
            last_ts = max(last_ts, ts)
            last_receipt = max(last_receipt, received)
        if index == 0:
            events = live
        elif live != events:
            raise RuntimeError(f"subscriber {index} got {live} live events, the first {events}")
    total = len(delays)
    return _Delivery(total / (last_receipt - first_ts), statistics.median(delays),
                     percentile(delays, 99), events, last_ts - first_ts, sizes / total)  # fmt: skip


def _cpu(pid: int | None = None) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _with_cpu(delivery: _Delivery, count: int, client: float, server: float) -> _Delivery:
    frames = delivery.events * count
    return dataclasses.replace(
        delivery, client_us=client / frames * 1e6, server_us=server / frames * 1e6
    )


async def _fanout_chatsys(setup: _Setup, count: int, tokens: int, rate: float) -> _Delivery:
    async with httpx.AsyncClient(timeout=60) as http:
        await _control(http, setup, "configure", latency=0.0, chunk_delay=1 / rate,
                       stamp_tokens=False)  # fmt: skip
        await _control(http, setup, "queue_reply", text=" ".join(["token"] * tokens))
        task_id = await _submit(http, setup, "fan-out")
        say(f"streaming (b) chatsys: {count} subscribers connect")
        clients = await _open_many(count, setup.api_port, f"/v1/tasks/{task_id}/stream")
        # Each one has the replay of task.created once its live subscription is active.
        await _until(lambda: all(c.frames for c in clients), 60, "the replay of task.created")
        since = time.time()
        client, server = _cpu(), _cpu(setup.api_pid)
        say(f"streaming (b) chatsys: a worker runs the task ({tokens} tokens at {rate:g}/s)")
        with setup.worker():
            codes = await _closed(clients, 300)
            client, server = _cpu() - client, _cpu(setup.api_pid) - server
    if set(codes) != {1000}:
        raise RuntimeError(f"close codes: {sorted(set(codes))}")
    return _with_cpu(_delivery(clients, since), count, client, server)


async def _fanout_baseline(setup: _Setup, count: int, like: _Delivery) -> _Delivery:
    clients = await _open_many(count, setup.base_port, "/ws")
    since = time.time()
    client, server = _cpu(), _cpu(setup.base_pid)
    interval = like.span_s / max(1, like.events - 1)
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(
            f"http://127.0.0.1:{setup.base_port}/broadcast",
            json={"expect": count, "events": like.events, "interval": interval,
                  "size": round(like.frame_bytes)},
        )  # fmt: skip
        answer.raise_for_status()
    codes = await _closed(clients, 300)
    client, server = _cpu() - client, _cpu(setup.base_pid) - server
    if set(codes) != {1000}:
        raise RuntimeError(f"baseline close codes: {sorted(set(codes))}")
    return _with_cpu(_delivery(clients, since), count, client, server)


# -- the scenario --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamingOptions:
    subscribers: tuple[int, ...] = (1, 100, 1000)
    idle: int = 1000
    relay_rounds: int = 5
    relay_tokens: int = 100
    relay_delay: float = 0.02
    fanout_tokens: int = 100
    fanout_rate: float = 20.0


def run_streaming(database_url: str, redis_url: str, options: StreamingOptions) -> Table:
    _raise_open_files(max([*options.subscribers, options.idle]) * 2 + 1024)
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        setup = _Setup(database_url, redis_url, work, free_port(), free_port(), free_port())
        setup.api_env = clean_env(
            CHATSYS_DATABASE_URL=database_url,
            CHATSYS_REDIS_URL=redis_url,
            CHATSYS_API_PORT=str(setup.api_port),
            CHATSYS_MODEL="openai/gpt-4o-mini",
            CHATSYS_LLM_API_BASE=f"{setup.fake_url}/v1",
            CHATSYS_LLM_API_KEY="sk-bench",
            CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
            CHATSYS_LOG_LEVEL="WARNING",
            CHATSYS_LOG_FORMAT="json",
        )
        fake_argv = [python, "-m", "tests.fakes.openai_compat", "--port", str(setup.fake_port)]
        base_argv = [python, "-m", "uvicorn", "bench.streaming:baseline_app", "--port",
                     str(setup.base_port), "--log-level", "warning", "--no-access-log",
                     "--ws-max-size", str(64 * KIB)]  # fmt: skip
        with (
            process(fake_argv, clean_env(), work / "fake.log") as fake,
            process([python, "-m", "chatsys", "api"], setup.api_env, work / "api.log") as api,
            process(base_argv, clean_env(), work / "baseline.log") as base,
        ):
            started = time.perf_counter()
            wait_ready(f"http://127.0.0.1:{setup.api_port}/healthz", [api, fake, base], started)
            wait_ready(f"http://127.0.0.1:{setup.base_port}/readyz", [base], started)
            wait_ready(f"{setup.fake_url}/v1/models", [fake], started)
            try:
                setup.api_pid, setup.base_pid = api.pid, base.pid
                return _measure(setup, options)
            except BaseException:
                for name in ("api.log", "worker.log"):
                    if (work / name).exists():
                        say(f"{name} (tail):\n{(work / name).read_text()[-3000:]}")
                raise


def _measure(setup: _Setup, options: StreamingOptions) -> Table:
    """(c), (a), then (b) for each subscriber count; ``idle=0`` leaves (c) out and
    ``relay_rounds=0`` leaves (a) out (the smoke scenario wants (b) alone)."""
    n = options.idle
    if n:
        say(f"streaming (c): {n} idle connections, bare FastAPI endpoint")
        base_idle = asyncio.run(_idle_memory(setup.base_pid, setup.base_port, "/ws", n))
        say(f"streaming (c): {n} idle connections, chatsys task stream (queued task)")
        ours_idle = asyncio.run(_chatsys_idle(setup, setup.api_pid, n))
    o = options
    table: Table = {}
    if o.relay_rounds:
        with setup.worker():
            table = asyncio.run(_relay(setup, o.relay_rounds, o.relay_tokens, o.relay_delay))
    for count in o.subscribers:
        ours = asyncio.run(_fanout_chatsys(setup, count, o.fanout_tokens, o.fanout_rate))
        say(f"streaming (b) baseline: {count} subscribers, {ours.events} frames over "
            f"{ours.span_s:.2f} s")  # fmt: skip
        theirs = asyncio.run(_fanout_baseline(setup, count, ours))
        table[f"(b) {count} subs: delivered frames/s"] = _row(
            ours.frames_per_s, theirs.frames_per_s
        )
        table[f"(b) {count} subs: p50 delay (ms)"] = _row(ours.p50_ms, theirs.p50_ms)
        table[f"(b) {count} subs: p99 delay (ms)"] = _row(ours.p99_ms, theirs.p99_ms)
        table[f"(b) {count} subs: events/s of the task"] = _row(
            ours.events / ours.span_s, theirs.events / theirs.span_s
        )
        table[f"(b) {count} subs: server CPU/frame (us)"] = _row(ours.server_us, theirs.server_us)
        table[f"(b) {count} subs: client CPU/frame (us)"] = _row(ours.client_us, theirs.client_us)
    if n:
        table["(c) RSS per idle WebSocket (KiB)"] = _row(ours_idle / KIB, base_idle / KIB)
    return table


__all__ = ["StreamingOptions", "baseline_app", "run_streaming"]
