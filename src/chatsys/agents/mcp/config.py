"""MCP server definitions: from settings (a JSON file or an environment value) or the API."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chatsys.domain.approvals.model import ToolPolicy
from chatsys.domain.shared.errors import InvalidInput

RESERVED_NAMES = frozenset({"chatsys", "workspace"})  # built-in tools and the workspace server
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_NAME = re.compile(NAME_PATTERN)

Transport = Literal["stdio", "streamable-http", "builtin"]
PolicyName = Literal["auto", "ask", "deny"]


class ServerConfig(BaseModel):
    """One MCP server. ``roles`` and ``tools`` decide which agents may use which of its
    tools (together with each agent profile's own allow-list, fixed in code)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="lowercase; no '__'; tools are NAME__TOOL")
    transport: Transport | None = None
    command: str | None = Field(default=None, min_length=1, max_length=4096)
    args: list[str] = Field(default_factory=list, max_length=256)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    roles: list[str] = Field(default_factory=lambda: ["*"], description="agent roles, or '*'")
    tools: list[str] = Field(default_factory=lambda: ["*"], description="glob patterns of tools")
    timeout: float | None = Field(default=None, gt=0, le=3600, description="seconds per call")
    max_result_chars: int | None = Field(default=None, ge=100, le=1_000_000)
    lazy: bool = Field(default=True, description="start on first use (false: at start-up)")
    policy: PolicyName = Field(
        default="auto",
        description="its tools' policy: auto (run), ask (each call needs an approval), "
        "deny (never offered)",
    )
    tool_policies: dict[str, PolicyName] = Field(
        default_factory=dict,
        max_length=256,
        description="per tool (a name or a glob pattern) overrides of 'policy'",
    )

    @model_validator(mode="after")
    def _shape(self) -> ServerConfig:
        if "__" in self.name or self.name.endswith("_"):
            raise ValueError("the name may not contain '__' or end in '_'")
        transport = self.transport or ("stdio" if self.command else "streamable-http")
        if transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs a 'command'")
        if transport == "streamable-http" and not self.url:
            raise ValueError("a streamable-http server needs a 'url'")
        if transport == "stdio" and self.url:
            raise ValueError("give either 'command' (stdio) or 'url' (streamable-http), not both")
        if transport == "streamable-http" and self.command:
            raise ValueError("give either 'command' (stdio) or 'url' (streamable-http), not both")
        object.__setattr__(self, "transport", transport)
        return self

    def public(self) -> dict[str, Any]:
        """The definition without secrets (env values and header values are hidden)."""
        data = self.model_dump(exclude_none=True)
        data["env"] = dict.fromkeys(self.env, "***")
        data["headers"] = dict.fromkeys(self.headers, "***")
        return data


def tool_policy(config: ServerConfig, tool: str) -> ToolPolicy:
    """The policy of one of the server's tools: its own entry in ``tool_policies``, else
    the first glob pattern there that matches it, else the server's ``policy``."""
    exact = config.tool_policies.get(tool)
    if exact is not None:
        return ToolPolicy(exact)
    for pattern, policy in config.tool_policies.items():
        if fnmatch.fnmatchcase(tool, pattern):
            return ToolPolicy(policy)
    return ToolPolicy(config.policy)


def parse_server(definition: Mapping[str, Any], *, builtin_ok: bool = False) -> ServerConfig:
    data = dict(definition)
    kind = data.pop("type", None)  # the mcpServers file format says "type": "stdio" | "http"
    if kind is not None and "transport" not in data:
        data["transport"] = {"http": "streamable-http", "streamableHttp": "streamable-http"}.get(
            kind, kind
        )
    try:
        config = ServerConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "server"
        raise InvalidInput(f"MCP server {where}: {first.get('msg')}") from None
    if not builtin_ok and (config.name in RESERVED_NAMES or config.transport == "builtin"):
        raise InvalidInput(f"MCP server name '{config.name}' is reserved")
    return config


def load_servers(
    servers: Sequence[Mapping[str, Any]], config_file: Path | None
) -> list[ServerConfig]:
    """Servers from the settings: the JSON list and the file (``{"servers": [...]}`` or the
    common ``{"mcpServers": {"name": {...}}}`` shape). A name given twice is refused."""
    found = [parse_server(s) for s in servers]
    if config_file is not None:
        try:
            content = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"MCP config file {config_file}: {exc}") from None
        if not isinstance(content, dict):
            raise InvalidInput(f"MCP config file {config_file}: expected a JSON object")
        for item in content.get("servers", []):
            found.append(parse_server(item))
        for name, item in (content.get("mcpServers") or {}).items():
            found.append(parse_server({"name": name, **item}))
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(f"MCP servers defined twice: {', '.join(dupes)}")
    return found


@dataclass(frozen=True, slots=True)
class McpDefaults:
    """Limits that apply to servers that set none of their own."""

    call_timeout: float = 30.0
    start_timeout: float = 30.0
    max_result_chars: int = 20_000
    health_interval: float = 15.0
    restart_backoff: float = 0.5
    restart_backoff_max: float = 60.0
    sync_interval: float = 1.0


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name)) and "__" not in name and not name.endswith("_")
