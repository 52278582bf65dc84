"""Bearer tokens (JWT, HS256, signing key from configuration) with a role and a scope.

- ``caseworker`` and ``supervisor``: one province; ``central_admin``: every province;
- ``partner``: one partner id, its own referrals only; ``donor``: aggregates only;
- ``service``: another OSSO service (internal, audited reads).
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from fastapi import Request

from shared.http import ProblemError

ISSUER = "osso"
ALGORITHM = "HS256"


class Role(StrEnum):
    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    CENTRAL_ADMIN = "central_admin"
    PARTNER = "partner"
    DONOR = "donor"
    SERVICE = "service"


PROVINCE_ROLES = frozenset({Role.CASEWORKER, Role.SUPERVISOR})


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"


class Forbidden(ProblemError):
    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    province: str | None = None
    partner_id: str | None = None

    def sees_province(self, province: str) -> bool:
        """Whether this principal may see case data of ``province``."""
        if self.role in (Role.CENTRAL_ADMIN, Role.SERVICE):
            return True
        return self.role in PROVINCE_ROLES and self.province == province

    @property
    def audit_name(self) -> str:
        """How the audit log names the actor: role and token subject, e.g. ``caseworker:cw-01``."""
        return f"{self.role.value}:{self.subject}"[:100]


def mint_token(
    secret: str,
    *,
    subject: str,
    role: Role,
    province: str | None = None,
    partner_id: str | None = None,
    ttl: float = 12 * 3600,
) -> str:
    """A signed token; province is required for caseworkers and supervisors, partner_id for partners."""
    if role in PROVINCE_ROLES and not province:
        raise ValueError(f"a {role.value} token needs a province")
    if role is Role.PARTNER and not partner_id:
        raise ValueError("a partner token needs a partner_id")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": subject,
        "role": role.value,
        "iat": now,
        "exp": now + int(ttl),
        "jti": secrets.token_hex(8),
    }
    if province:
        claims["province"] = province
    if partner_id:
        claims["partner_id"] = partner_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> Principal:
    principal, expires = _verified(secret, token)
    if expires <= time.time():  # checked on every use: a cached token still expires
        raise Unauthorized("the token has expired")
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """The token's caller and expiry, its signature checked once: a caseworker's client sends the
    same token with every request, and checking it again each time was a visible share of a
    registration's CPU. Failures raise, and an exception is never cached."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "sub"]}
        )
        role = Role(claims["role"])
        expires = float(claims["exp"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise Unauthorized("the token is not valid") from None
    principal = Principal(str(claims["sub"]), role, claims.get("province"), claims.get("partner_id"))
    if role in PROVINCE_ROLES and not principal.province:
        raise Unauthorized("the token has no province scope")
    if role is Role.PARTNER and not principal.partner_id:
        raise Unauthorized("the token has no partner scope")
    return principal, expires


def principal_from(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <token>`` checked with the runtime's secret."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required")
    return decode_token(request.app.state.runtime.jwt_secret, token.strip())


def require(*roles: Role) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency admitting only ``roles``."""
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        principal = principal_from(request)
        if principal.role not in allowed:
            raise Forbidden(f"the {principal.role.value} role may not do this")
        return principal

    return dependency
