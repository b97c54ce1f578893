"""Dashboard API tokens: HS256 JWTs signed with our own secret, for scripts and the proxy."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "email", "name", "role", "sid", "iat", "exp", "jti"]
# Clock skew tolerated between replicas for `iat`.
LEEWAY_S = 30


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


def mint(
    *, user_id: int, email: str, name: str, role: str, sid: str, secret: str, ttl_s: int
) -> IssuedToken:
    """Sign a new token, with its own `jti`, that lives no longer than the sign-in `sid`."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "email": email,
        "name": name,
        "role": role,
        "sid": sid,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm=ALGORITHM), now + ttl_s)


def decode(token: str, secret: str, *, max_age_s: int) -> dict[str, Any]:
    """Verify a token's signature, algorithm, expiry and age, and return its claims."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("The token has expired; mint a new one at /api/token.") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("The token is not signed with HS256.") from None
    except jwt.InvalidSignatureError:
        raise TokenError("The token's signature is invalid.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"The token lacks the {exc.claim!r} claim.") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("The token's issue time is in the future.") from None
    except jwt.InvalidTokenError:
        raise TokenError("The token is malformed.") from None
    # TOKEN_TTL_S caps every token's life, whatever its own `exp` says: a token signed with a
    # leaked key for three years still dies an hour after its `iat`.
    issued_at = claims["iat"]
    if not isinstance(issued_at, int | float) or time.time() - issued_at > max_age_s + LEEWAY_S:
        raise TokenError("The token is older than TOKEN_TTL_S allows; mint a new one.")
    if not isinstance(claims["sub"], str) or not isinstance(claims["sid"], str):
        raise TokenError("The token is malformed.")
    return claims
