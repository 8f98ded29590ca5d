"""Join tokens: what a browser shows the media edge instead of an API key.

A token is a JWT (HS256, PyJWT) naming one session, with a unique `jti`, a short
lifetime and an audience of its own, signed with `session_token_secret`. Any media edge
replica verifies it alone; single use is the store's job (`JoinTokenStore.use_join_token`
records each `jti` once).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from switchboard_shared.domain.calls import utcnow

AUDIENCE = "switchboard-media-edge"
_ALGORITHM = "HS256"


class InvalidJoinToken(ValueError):
    """Forged, expired, for another audience, or not a token at all."""


@dataclass(frozen=True)
class JoinClaims:
    session_id: str
    token_id: str
    expires_at: datetime


def issue_join_token(
    secret: str, session_id: str, lifetime_seconds: float, now: datetime | None = None
) -> tuple[str, JoinClaims]:
    """A new token for `session_id`, valid for `lifetime_seconds`, and what it claims."""
    # JWT times are whole seconds: the claims say what the token says.
    issued = (now or utcnow()).replace(microsecond=0)
    claims = JoinClaims(
        session_id=session_id,
        token_id=uuid.uuid4().hex,
        expires_at=issued + timedelta(seconds=lifetime_seconds),
    )
    payload = {
        "sid": claims.session_id,
        "jti": claims.token_id,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": claims.expires_at,
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM), claims


def read_join_token(secret: str, token: str) -> JoinClaims:
    """The claims of a token this deployment signed and that has not expired; raises
    InvalidJoinToken otherwise (the reason in its message)."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sid", "jti", "exp", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidJoinToken(str(exc)) from None
    session_id, token_id = payload["sid"], payload["jti"]
    if not isinstance(session_id, str) or not isinstance(token_id, str):
        raise InvalidJoinToken("malformed claims")
    expires_at = datetime.fromtimestamp(int(payload["exp"]), tz=utcnow().tzinfo)
    return JoinClaims(session_id=session_id, token_id=token_id, expires_at=expires_at)
