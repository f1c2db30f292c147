"""A fake OpenAI-compatible chat server for tests: real HTTP, real SSE, real tool calls.

Tests start it (in a thread of the test process, or as its own process with
``python -m tests.fakes.openai_compat --port N``) and point LiteLLM at it.
Behaviour is scripted through :class:`FakeOpenAI` (in-process) or its
``/_control`` endpoints (from another process): latency, failures, hangs,
tool calls, and a record of every request so tests can count calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.support import GiveUp, eventually_sync, free_port

_STEP = re.compile(r"\(step '([^']+)'")


@dataclass
class Call:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    tools: bool
    authorization: str | None
    tool_names: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.time)  # when it arrived (wall clock)

    @property
    def last_user(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                content: str = message["content"]
                return content
        return ""

    @property
    def step(self) -> str | None:
        found = _STEP.search(self.last_user)
        return found.group(1) if found else None


@dataclass
class FakeOpenAI:
    """The script and the record of one fake server."""

    latency: float = 0.0
    chunk_delay: float = 0.0
    stamp_tokens: bool = False  # each streamed word becomes "<time.time_ns() at send> "
    calls: list[Call] = field(default_factory=list)
    _fail_next: list[int] = field(default_factory=list)
    _failing_models: dict[str, int] = field(default_factory=dict)
    _failing_steps: dict[str, int] = field(default_factory=dict)
    _hang_next: int = 0
    _tool_call: tuple[str, dict[str, Any]] | None = None
    _replies: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.latency = self.chunk_delay = 0.0
            self.stamp_tokens = False
            self.calls.clear()
            self._fail_next.clear()
            self._failing_models.clear()
            self._failing_steps.clear()
            self._hang_next = 0
            self._tool_call = None
            self._replies.clear()

    def configure(
        self,
        *,
        latency: float | None = None,
        chunk_delay: float | None = None,
        stamp_tokens: bool | None = None,
    ) -> None:
        """Set pacing from another process (``POST /_control/configure``); ``None`` keeps."""
        with self._lock:
            if latency is not None:
                self.latency = latency
            if chunk_delay is not None:
                self.chunk_delay = chunk_delay
            if stamp_tokens is not None:
                self.stamp_tokens = stamp_tokens

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._fail_next.extend([status] * count)

    def fail_model(self, model: str, status: int = 500) -> None:
        with self._lock:
            self._failing_models[model] = status

    def fail_step(self, step: str, status: int = 500) -> None:
        """Every request for this plan step fails (the step key is read from the prompt)."""
        with self._lock:
            self._failing_steps[step] = status

    def queue_reply(self, text: str) -> None:
        """The next request (that is not failed or hung) answers exactly this text."""
        with self._lock:
            self._replies.append(text)

    def hang_next(self, count: int) -> None:
        with self._lock:
            self._hang_next += count

    def script_tool_call(self, name: str, arguments: dict[str, Any]) -> None:
        with self._lock:
            self._tool_call = (name, arguments)

    def count(self, *, step: str | None = None, model: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for c in self.calls
                if (step is None or c.step == step) and (model is None or c.model == model)
            )

    def _decide(self, call: Call) -> tuple[str, Any]:
        with self._lock:
            self.calls.append(call)
            if self._hang_next:
                self._hang_next -= 1
                return "hang", None
            if self._fail_next:
                return "fail", self._fail_next.pop(0)
            if call.model in self._failing_models:
                return "fail", self._failing_models[call.model]
            if call.step is not None and call.step in self._failing_steps:
                return "fail", self._failing_steps[call.step]
            if self._replies:
                return "text", self._replies.pop(0)
            answered = any(m.get("role") == "tool" for m in call.messages)
            if self._tool_call is not None and call.tools and not answered:
                return "tool", self._tool_call
        tool_results = [str(m.get("content")) for m in call.messages if m.get("role") == "tool"]
        text = f"[fake:{call.model}] reply to: {call.last_user[-80:]}"
        if call.step:
            text = f"[fake:{call.model}] step {call.step} done."
        if tool_results:
            text += " Tool said: " + "; ".join(tool_results)
        return "text", text


def _usage(call: Call, reply: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in call.messages)
    completion = len(reply.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _chunk(call_id: str, model: str, delta: dict[str, Any], finish: str | None) -> str:
    body = {
        "id": call_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def create_app(fake: FakeOpenAI) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}

    @app.post("/_control/{action}")
    async def control(action: str, request: Request) -> dict[str, Any]:
        args = await request.json() if await request.body() else {}
        if action == "counts":
            return {"total": len(fake.calls), "by_step": _by_step(fake)}
        getattr(fake, action)(**args)
        return {"ok": True}

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        call = Call(
            model=body.get("model", ""),
            messages=body.get("messages", []),
            stream=bool(body.get("stream")),
            tools=bool(body.get("tools")),
            authorization=request.headers.get("authorization"),
            tool_names=[str(t.get("function", {}).get("name")) for t in body.get("tools") or []],
        )
        kind, payload = fake._decide(call)
        await asyncio.sleep(fake.latency)
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "fail":
            error = {"message": f"injected failure ({payload})", "type": "server_error",
                     "code": str(payload)}  # fmt: skip
            return JSONResponse({"error": error}, status_code=int(payload))
        call_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if not call.stream:
            return JSONResponse(_whole(call, call_id, kind, payload))
        return StreamingResponse(
            _stream(fake, call, call_id, kind, payload), media_type="text/event-stream"
        )

    return app


def _by_step(fake: FakeOpenAI) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in list(fake.calls):
        key = call.step or "-"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _whole(call: Call, call_id: str, kind: str, payload: Any) -> dict[str, Any]:
    if kind == "tool":
        name, arguments = payload
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)}}],
        }  # fmt: skip
        finish, reply = "tool_calls", json.dumps(arguments)
    else:
        message, finish, reply = {"role": "assistant", "content": payload}, "stop", payload
    return {
        "id": call_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(call, reply),
    }


async def _stream(
    fake: FakeOpenAI, call: Call, call_id: str, kind: str, payload: Any
) -> AsyncIterator[str]:
    if kind == "tool":
        name, arguments = payload
        raw = json.dumps(arguments)
        tool_id = f"call_{uuid.uuid4().hex[:8]}"
        first = {"role": "assistant", "tool_calls": [
            {"index": 0, "id": tool_id, "type": "function",
             "function": {"name": name, "arguments": ""}}]}  # fmt: skip
        yield _chunk(call_id, call.model, first, None)
        for start in range(0, len(raw), 8):
            piece = {
                "tool_calls": [{"index": 0, "function": {"arguments": raw[start : start + 8]}}]
            }
            await asyncio.sleep(fake.chunk_delay)
            yield _chunk(call_id, call.model, piece, None)
        yield _chunk(call_id, call.model, {}, "tool_calls")
        reply = raw
    else:
        reply = payload
        yield _chunk(call_id, call.model, {"role": "assistant", "content": ""}, None)
        for word in re.findall(r"\S+\s*", reply):
            await asyncio.sleep(fake.chunk_delay)
            # With stamp_tokens, each token says when it left, by the wall clock.
            token = f"{time.time_ns()} " if fake.stamp_tokens else word
            yield _chunk(call_id, call.model, {"content": token}, None)
        yield _chunk(call_id, call.model, {}, "stop")
    usage = {"id": call_id, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": call.model, "choices": [], "usage": _usage(call, reply)}  # fmt: skip
    yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


@dataclass
class RunningFake:
    fake: FakeOpenAI
    base_url: str  # ends in /v1


@contextmanager
def run_fake_openai() -> Iterator[RunningFake]:
    """Serve a fresh fake on a free loopback port in a background thread."""
    fake = FakeOpenAI()
    port = free_port()
    config = uvicorn.Config(create_app(fake), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-openai", daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise GiveUp("the fake OpenAI server stopped before it started")
        return server.started

    eventually_sync(started, within=10, every=0.01, message="the fake OpenAI server did not start")
    try:
        yield RunningFake(fake, f"http://127.0.0.1:{port}/v1")
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server for tests")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(FakeOpenAI()), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
