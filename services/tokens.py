"""Dashboard API tokens: HS256 JWTs signed with our own secret, for scripts and the proxy."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from services.cache import cache

ALGORITHM = "HS256"
# A cached token is handed out again until this close to its expiry.
REUSE_MARGIN_S = 300
REQUIRED_CLAIMS = ["sub", "email", "name", "role", "iat", "exp", "jti"]


class TokenError(Exception):
    """A bearer token was refused; the message says why, without echoing the token."""


@dataclass(frozen=True)
class IssuedToken:
    """A token and when it expires."""

    token: str
    expires_at: int

    def as_json(self) -> dict[str, Any]:
        """Return the body of /api/token."""
        return {"token": self.token, "token_type": "Bearer", "expires_at": self.expires_at}


def mint(*, user_id: int, email: str, name: str, role: str, secret: str, ttl_s: int) -> IssuedToken:
    """Sign a new token for a user."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "email": email,
        "name": name,
        "role": role,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm=ALGORITHM), now + ttl_s)


def token_for(
    *, user_id: int, email: str, name: str, role: str, secret: str, ttl_s: int
) -> IssuedToken:
    """Return the user's cached token, or mint one when it is missing or about to expire."""
    key = f"api-token:{user_id}:{role}"
    cached = cache.get(key)
    if isinstance(cached, IssuedToken) and cached.expires_at - time.time() > REUSE_MARGIN_S:
        return cached
    issued = mint(user_id=user_id, email=email, name=name, role=role, secret=secret, ttl_s=ttl_s)
    cache.set(key, issued, timeout=max(1, ttl_s - REUSE_MARGIN_S))
    return issued


def decode(token: str, secret: str) -> dict[str, Any]:
    """Verify a token's signature, algorithm and expiry, and return its claims."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("The token has expired; mint a new one at /api/token.") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("The token is not signed with HS256.") from None
    except jwt.InvalidSignatureError:
        raise TokenError("The token's signature is invalid.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"The token lacks the {exc.claim!r} claim.") from None
    except jwt.InvalidTokenError:
        raise TokenError("The token is malformed.") from None
    return claims
