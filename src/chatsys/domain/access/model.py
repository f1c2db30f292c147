"""Identities: API keys, roles, the principal of a request, audit entries.

A key reads ``csk_<prefix>_<secret>``. Only a hash of the secret is stored; the
prefix finds the row and the hashes are compared in constant time. The key's
``subject`` owns what the key creates (several keys can share one subject, so a
rotated key keeps its owner's tasks). Roles: ``admin`` may do everything and
sees every owner's objects; ``member`` works on its subject's objects;
``viewer`` only reads them. A key's ``default_priority`` is the priority of the tasks
it submits without one (an explicit ``priority`` wins; no key is capped).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.shared.errors import Forbidden
from chatsys.domain.tasks.model import Priority

KEY_PREFIX = "csk"
_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LEN = 12
_SECRET_LEN = 40  # base62: about 238 bits
_KEY_SHAPE = re.compile(
    rf"^{KEY_PREFIX}_([A-Za-z0-9]{{{_PREFIX_LEN}}})_([A-Za-z0-9]{{{_SECRET_LEN}}})$"
)
NAME_MAX = 100
SUBJECT_SHAPE = re.compile(r"^[A-Za-z0-9._@:-]{1,200}$")


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request."""

    subject: str
    role: Role
    key_id: UUID | None = None  # None: authentication is switched off (development)
    default_priority: Priority = Priority.NORMAL  # of its tasks submitted without one

    @property
    def actor(self) -> str:
        """How the audit trail names the caller."""
        return f"key:{self.key_id}" if self.key_id else f"local:{self.subject}"

    @property
    def scope(self) -> str | None:
        """Whose objects a read may see: None for an admin (everyone's)."""
        return None if self.role is Role.ADMIN else self.subject

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise Forbidden(f"this needs the {allowed} role; your key is {self.role.value}")

    def require_writer(self) -> None:
        self.require(Role.ADMIN, Role.MEMBER)


@dataclass(slots=True)
class ApiKey:
    id: UUID
    name: str
    role: Role
    subject: str
    prefix: str
    secret_hash: str
    created_at: datetime
    created_by: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    default_priority: Priority = Priority.NORMAL

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(self.subject, self.role, self.id, self.default_priority)


def hash_secret(secret: str) -> str:
    # Keys are 238 random bits: a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(full key, prefix, secret hash). The full key exists only in the answer."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(_PREFIX_LEN))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LEN))
    return f"{KEY_PREFIX}_{prefix}_{secret}", prefix, hash_secret(secret)


def parse_key(raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    match = _KEY_SHAPE.match(raw)
    return (match.group(1), match.group(2)) if match else None


_DUMMY_HASH = hash_secret("x" * _SECRET_LEN)


def verify(key: ApiKey | None, secret: str) -> bool:
    """Constant-time check; an unknown prefix costs the same comparison."""
    expected = key.secret_hash if key is not None else _DUMMY_HASH
    matches = hmac.compare_digest(hash_secret(secret), expected)
    return matches and key is not None and key.active


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    actor: str
    target: str | None = None
    task_id: UUID | None = None
    agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    event_id: UUID = field(default_factory=uuid4)
    timestamp: datetime | None = None  # set by the database

    @property
    def id(self) -> UUID:
        return self.event_id

    @property
    def created_at(self) -> datetime:
        assert self.timestamp is not None
        return self.timestamp
