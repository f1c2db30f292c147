"""Which model serves which role (importable without LiteLLM: the API uses it too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chatsys.domain.planning.planner import Role
from chatsys.domain.shared.errors import InvalidInput

OFFLINE_PROVIDER = "chatsys-offline"
OFFLINE_MODEL = f"{OFFLINE_PROVIDER}/team"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    default_model: str | None = None
    role_models: Mapping[str, str] = field(default_factory=dict)
    fallbacks: Sequence[str] = ()
    api_base: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    num_retries: int = 2
    allowed_fails: int = 3
    cooldown_seconds: float = 30.0

    def check(self) -> None:
        """Refuse what no gateway can serve (raises ``InvalidInput``)."""
        unknown = set(self.role_models) - {r.value for r in Role}
        if unknown:
            raise InvalidInput(f"role_models names unknown roles: {', '.join(sorted(unknown))}")

    def model_for(self, role: Role) -> str:
        return self.role_models.get(role.value) or self.default_model or OFFLINE_MODEL

    def configured_models(self) -> list[str]:
        return sorted({self.model_for(role) for role in Role})

    @property
    def offline(self) -> bool:
        return self.default_model is None and not self.role_models
