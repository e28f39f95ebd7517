"""JWT access and refresh tokens with PyJWT: strict decoding, asymmetric keys, rotation."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError

from fastkit._b64 import b64url_decode

__all__ = ["MAX_TOKEN_LENGTH", "JWTKey", "TokenClaims", "TokenError", "TokenService", "TokenType"]

MAX_TOKEN_LENGTH = 8192  # characters; decode refuses longer tokens as malformed

TokenType = Literal["access", "refresh"]

_HMAC = ("HS256", "HS384", "HS512")
_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_RESERVED = frozenset(
    {"sub", "exp", "iat", "nbf", "jti", "type", "scopes", "iss", "aud", "fam", "scope", "auth_time"}
)


class TokenError(Exception):
    """A token was refused. ``reason`` says why, for logs; never show it to the client.

    Reasons: ``malformed``, ``alg_none``, ``algorithm_not_allowed``, ``unknown_kid``,
    ``bad_signature``, ``expired``, ``not_yet_valid``, ``wrong_issuer``,
    ``wrong_audience``, ``missing_iss``, ``missing_aud``, ``missing_sub``, ``missing_exp``,
    ``missing_jti``, ``missing_iat``, ``session_expired``, ``wrong_type``, ``invalid_claims``.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TokenClaims(BaseModel):
    """The verified claims of a token; unknown claims are kept as extra attributes."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sub: str
    exp: int
    iat: int
    jti: str
    type: TokenType
    nbf: int | None = None
    scopes: list[str] = []
    iss: str | None = None
    aud: str | list[str] | None = None
    fam: str | None = None  # the refresh-token family (one per login)
    auth_time: int | None = None  # when the login happened (OpenID Connect's claim)

    @property
    def extras(self) -> dict[str, Any]:
        """Claims beyond the standard ones (those passed as ``claims=``)."""
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class JWTKey:
    """One key: ``kid``, algorithm, and the key material to sign and/or verify.

    Use `hmac` or `asymmetric` to build one. A key without ``signing_key`` only verifies
    (a retired key kept until its tokens expire, or a public key only).
    """

    kid: str | None
    algorithm: str
    verification_key: Any = field(repr=False)
    signing_key: Any = field(default=None, repr=False)

    @classmethod
    def hmac(
        cls, secret: str | bytes, *, kid: str | None = None, algorithm: str = "HS256"
    ) -> JWTKey:
        """A shared-secret key (HS256/384/512); the secret must be at least 32 bytes.

        Raises:
            ValueError: If the secret is too short or the algorithm is not an HS one.
        """
        if algorithm not in _HMAC:
            raise ValueError(f"HMAC algorithm must be one of {_HMAC}, got {algorithm!r}.")
        raw = secret.encode() if isinstance(secret, str) else secret
        minimum = {"HS256": 32, "HS384": 48, "HS512": 64}[algorithm]  # RFC 7518 3.2
        if len(raw) < minimum:
            raise ValueError(
                f"The {algorithm} secret must be at least {minimum} bytes; generate one with "
                f"secrets.token_hex({minimum})."
            )
        return cls(kid, algorithm, raw, raw)

    @classmethod
    def asymmetric(
        cls,
        *,
        public_key: str | bytes | Any,
        private_key: str | bytes | Any | None = None,
        kid: str | None = None,
        algorithm: str = "RS256",
    ) -> JWTKey:
        """An RSA/EC key pair (RS*, PS*, ES*): the private key signs, the public one verifies.

        Raises:
            ValueError: If the algorithm is not an asymmetric one or a key cannot be loaded.
        """
        if algorithm not in _ASYMMETRIC:
            raise ValueError(
                f"Asymmetric algorithm must be one of {_ASYMMETRIC}, got {algorithm!r}."
            )
        algo = jwt.get_algorithm_by_name(algorithm)
        try:
            public = algo.prepare_key(public_key)
            private = algo.prepare_key(private_key) if private_key is not None else None
        except (jwt.InvalidKeyError, ValueError, TypeError) as error:
            raise ValueError(f"Cannot load the {algorithm} key: {error}.") from None
        return cls(kid, algorithm, public, private)


def _seconds(value: dt.timedelta | int | float) -> int:
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"Token lifetimes must be positive, got {value!r}.")
    return int(seconds)


class TokenService:
    """Create and verify access and refresh JWTs.

    One key: pass ``secret`` (HS256 by default), or ``private_key``/``public_key`` with an
    RS/ES ``algorithm``. Several keys (rotation): pass ``keys`` — the first key that can
    sign signs new tokens (its ``kid`` goes in the header), every key verifies; drop a key
    once the tokens it signed have expired.

    Args:
        secret: HS shared secret, at least 32 bytes.
        algorithm: The algorithm for ``secret`` or the key pair.
        private_key: PEM private key (signs), with ``public_key`` (verifies).
        public_key: PEM public key; alone, the service only verifies.
        keys: `JWTKey` objects for rotation, instead of the above.
        access_ttl: Access token lifetime (15 minutes).
        refresh_ttl: Refresh token lifetime (7 days).
        session_ttl: The absolute lifetime of a login (30 days): tokens made with an
            ``auth_time`` never outlive ``auth_time + session_ttl``, however often they are
            refreshed, and are refused (``session_expired``) past it.
        issuer: ``iss`` to set and require.
        audience: ``aud`` to set and require.
        leeway: Seconds of clock skew tolerated for ``exp``/``nbf``.

    Raises:
        ValueError: If no key or several conflicting key options are given, an HS secret is
            shorter than 32 bytes, two keys share a ``kid``, or a lifetime is not positive.

    Example:
        ```python
        tokens = TokenService(secret=os.environ["JWT_SECRET"], issuer="my-api")
        token = tokens.create_access_token("42", scopes=["items:read"])
        claims = tokens.decode(token)  # TokenClaims(sub="42", scopes=["items:read"], ...)
        ```
    """

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        algorithm: str = "HS256",
        private_key: str | bytes | Any | None = None,
        public_key: str | bytes | Any | None = None,
        keys: Sequence[JWTKey] = (),
        access_ttl: dt.timedelta | int = dt.timedelta(minutes=15),
        refresh_ttl: dt.timedelta | int = dt.timedelta(days=7),
        session_ttl: dt.timedelta | int = dt.timedelta(days=30),
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int | float = 0,
    ) -> None:
        given = sum(x is not None for x in (secret, public_key)) + (1 if keys else 0)
        if given != 1 or (private_key is not None and public_key is None):
            raise ValueError(
                "Give exactly one of secret=, public_key= (with private_key=) or keys=."
            )
        if secret is not None:
            key_list = [JWTKey.hmac(secret, algorithm=algorithm)]
        elif public_key is not None:
            key_list = [
                JWTKey.asymmetric(
                    public_key=public_key, private_key=private_key, algorithm=algorithm
                )
            ]
        else:
            key_list = list(keys)
            kids = [k.kid for k in key_list]
            if len(key_list) > 1 and (None in kids or len(set(kids)) != len(kids)):
                raise ValueError("With several keys, each needs its own kid.")
        self.keys = key_list
        self._verifiers = {k.kid: _verifier(k) for k in key_list}
        self._algorithms = {k.algorithm for k in key_list}
        self._signer = next((k for k in key_list if k.signing_key is not None), None)
        self.access_ttl = _seconds(access_ttl)
        self.refresh_ttl = _seconds(refresh_ttl)
        self.session_ttl = _seconds(session_ttl)
        if leeway < 0:
            raise ValueError(f"leeway must be >= 0 seconds, got {leeway}.")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    # --- creating ----------------------------------------------------------------------------

    def _encode(self, payload: dict[str, Any]) -> str:
        if self._signer is None:
            raise RuntimeError("This TokenService has no private key; it can only verify tokens.")
        headers = {"kid": self._signer.kid} if self._signer.kid is not None else None
        return jwt.encode(
            payload, self._signer.signing_key, algorithm=self._signer.algorithm, headers=headers
        )

    def session_end(self, auth_time: int) -> int:
        """When a login made at ``auth_time`` ends, whatever its refreshes (Unix time)."""
        return auth_time + self.session_ttl

    def _payload(
        self, subject: str, kind: TokenType, ttl: int, auth_time: int | None
    ) -> dict[str, Any]:
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string, e.g. str(user.id).")
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "type": kind,
        }
        if auth_time is not None:
            # Rotation never extends a login: no token outlives its session.
            payload["auth_time"] = auth_time
            payload["exp"] = min(payload["exp"], self.session_end(auth_time))
        if self.issuer is not None:
            payload["iss"] = self.issuer
        if self.audience is not None:
            payload["aud"] = self.audience
        return payload

    def create_access_token(
        self,
        subject: str,
        *,
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        family: str | None = None,
        auth_time: int | None = None,
    ) -> str:
        """A signed access token for ``subject`` (the user id as a string).

        ``auth_time`` (Unix time of the login) caps its expiry at the end of the session.

        Raises:
            ValueError: If ``claims`` tries to set a standard claim.
        """
        payload = self._payload(subject, "access", self.access_ttl, auth_time)
        payload["scopes"] = sorted(set(scopes))
        if family is not None:
            payload["fam"] = family
        if claims:
            clash = _RESERVED.intersection(claims)
            if clash:
                raise ValueError(f"claims cannot set standard claims {sorted(clash)}.")
            payload.update(claims)
        return self._encode(payload)

    def create_refresh_token(
        self,
        subject: str,
        *,
        family: str | None = None,
        scopes: Iterable[str] = (),
        auth_time: int | None = None,
    ) -> str:
        """A signed refresh token; ``family`` groups the tokens of one login (new if None).

        ``auth_time`` (Unix time of the login) caps its expiry at the end of the session.
        """
        payload = self._payload(subject, "refresh", self.refresh_ttl, auth_time)
        payload["fam"] = family or uuid.uuid4().hex
        payload["scopes"] = sorted(set(scopes))
        return self._encode(payload)

    # --- verifying ---------------------------------------------------------------------------

    def _key_for(self, header: dict[str, Any]) -> _Verifier:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise TokenError("alg_none")
        if algorithm not in self._algorithms:
            raise TokenError("algorithm_not_allowed")
        if "crit" in header or "b64" in header:
            # No JWS extension is supported (RFC 7515 4.1.11): refuse rather than ignore.
            raise TokenError("malformed")
        kid = header.get("kid")
        if kid is None and len(self.keys) == 1:
            verifier = self._verifiers[self.keys[0].kid]
        elif isinstance(kid, str) and kid in self._verifiers:
            verifier = self._verifiers[kid]
        elif kid is not None and not isinstance(kid, str):
            raise TokenError("malformed")
        else:
            raise TokenError("unknown_kid")
        if verifier.algorithm != algorithm:
            # e.g. an HS256 token "signed" with the RS public key: never accepted.
            raise TokenError("algorithm_not_allowed")
        return verifier

    def decode(self, token: str, *, expected_type: TokenType = "access") -> TokenClaims:
        """Verify ``token`` and return its claims.

        First a strict structural check of our own, in one pass over the compact JWS: at
        most `MAX_TOKEN_LENGTH` characters, three base64url segments without padding (one
        spelling of each), a JSON-object header whose ``alg`` and ``kid`` name one of this
        service's keys, no JWS extension (``crit``, ``b64``); the signature, with PyJWT's
        algorithm for that key; a strict-JSON payload whose NumericDates are numbers. Then
        PyJWT's own registered-claim checks, with its options: ``exp``, ``iat``, ``sub``,
        ``jti`` required; ``exp``, ``nbf``, ``iat`` with ``leeway``; ``iss``, ``aud``,
        ``sub`` and ``jti`` types. Last, the login's end (``auth_time + session_ttl``) and
        the token type.

        Raises:
            TokenError: With a ``reason`` (see `TokenError`), whatever is wrong.
        """
        if (
            not isinstance(token, str)
            or len(token) > MAX_TOKEN_LENGTH
            or _COMPACT_JWS.fullmatch(token) is None
        ):
            raise TokenError("malformed")
        header_segment, payload_segment, signature_segment = token.split(".")
        verifier = self._key_for(_json_segment(header_segment))
        signature = _segment_bytes(signature_segment)
        signing_input = token[: len(header_segment) + 1 + len(payload_segment)].encode("ascii")
        if not verifier.algorithm_impl.verify(signing_input, verifier.key, signature):
            raise TokenError("bad_signature")
        payload = _json_segment(payload_segment)
        for claim in _NUMERIC_DATES:
            value = payload.get(claim)
            if value is not None:
                _numeric(value)  # PyJWT would int() them: true or "2099" would pass
        # Where PyJWT is laxer than fastkit's documented reasons: an empty aud counts as
        # absent to PyJWT, and a null iss as a wrong one.
        if "aud" in payload and (self.audience is None or payload["aud"] in ("", [])):
            raise TokenError("wrong_audience")  # meant for a named audience, or for none
        if self.issuer is not None and payload.get("iss") is None:
            raise TokenError("missing_iss")
        try:
            _CLAIMS.validate(
                token, payload, issuer=self.issuer, audience=self.audience, leeway=self.leeway
            )
        except jwt.InvalidTokenError as error:
            raise TokenError(_reason(error)) from None
        auth_time = payload.get("auth_time")
        if auth_time is not None and self.session_end(int(auth_time)) <= time.time() - self.leeway:
            raise TokenError("session_expired")  # e.g. session_ttl was shortened since
        if payload.get("type") != expected_type:
            raise TokenError("wrong_type")
        try:
            return TokenClaims.model_validate(payload)
        except ValidationError:
            raise TokenError("invalid_claims") from None


@dataclass(frozen=True)
class _Verifier:
    """A key ready to verify: PyJWT's algorithm object and the prepared key, made once."""

    algorithm: str
    algorithm_impl: Any
    key: Any


def _verifier(key: JWTKey) -> _Verifier:
    impl = jwt.get_algorithm_by_name(key.algorithm)
    prepared = key.verification_key
    if key.algorithm in _HMAC:
        try:
            prepared = impl.prepare_key(prepared)
        except jwt.InvalidKeyError:
            raise ValueError(
                "A PEM or SSH key cannot be an HMAC secret; use JWTKey.asymmetric for key pairs."
            ) from None
    return _Verifier(key.algorithm, impl, prepared)


_NUMERIC_DATES = ("exp", "iat", "nbf", "auth_time")


class _ClaimChecks(jwt.PyJWT):
    """PyJWT's registered-claim checks, run on a payload already verified and parsed.

    ``jwt.decode`` would parse and verify the token a second time (its per-character segment
    checks cost more than the rest of our decode), so the claim checks are called directly:
    PyJWT's ``_validate_claims``, the method its ``decode`` runs them with. It is not public
    API; a PyJWT without it gets the same checks through the public ``jwt.decode`` (signature
    verification off: done once above), slower but alike.
    """

    _fast = callable(getattr(jwt.PyJWT, "_validate_claims", None))

    def __init__(self) -> None:
        # aud is checked even with no audience configured: a token meant for a named
        # audience is not meant for us.
        super().__init__(options={"require": ["exp", "iat", "sub", "jti"], "verify_aud": True})
        self.public_options = {
            "verify_signature": False,
            **{f"verify_{c}": True for c in ("exp", "nbf", "iat", "aud", "iss", "sub", "jti")},
            "require": ["exp", "iat", "sub", "jti"],
        }

    def validate(
        self,
        token: str,
        payload: dict[str, Any],
        *,
        issuer: str | None,
        audience: str | None,
        leeway: float,
    ) -> None:
        """Raise PyJWT's `jwt.InvalidTokenError` subclass for what is wrong in ``payload``."""
        # The issuer as a one-item tuple: PyJWT 2.10.0 took a str issuer for a sequence and
        # accepted any part of it (CVE-2024-53861); membership in a tuple is exact everywhere.
        issuers = None if issuer is None else (issuer,)
        if self._fast:
            self._validate_claims(
                payload, self.options, audience=audience, issuer=issuers, leeway=leeway
            )
            return
        jwt.decode(
            token,
            options=self.public_options,  # type: ignore[arg-type]
            audience=audience,
            issuer=issuers,
            leeway=leeway,
        )


_CLAIMS = _ClaimChecks()

# PyJWT's refusals as TokenError reasons; the first class in an error's MRO found here wins.
_REASONS: dict[type[Exception], str] = {
    jwt.ExpiredSignatureError: "expired",
    jwt.ImmatureSignatureError: "not_yet_valid",
    jwt.InvalidIssuerError: "wrong_issuer",
    jwt.InvalidAudienceError: "wrong_audience",
    jwt.InvalidTokenError: "malformed",  # InvalidSubjectError, InvalidJTIError, DecodeError
}


def _reason(error: jwt.InvalidTokenError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing_{error.claim}"
    return next(_REASONS[cls] for cls in type(error).__mro__ if cls in _REASONS)


# Three base64url segments without padding (the signature may be empty); anything else,
# including whitespace and padding that lenient decoders would skip, is malformed.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _segment_bytes(segment: str) -> bytes:
    try:
        return b64url_decode(segment)  # one spelling only: no second form of a signature
    except ValueError:
        raise TokenError("malformed") from None


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = _JSON.decode(_segment_bytes(segment).decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise TokenError("malformed") from None
    if not isinstance(value, dict):
        raise TokenError("malformed")
    return value


def _not_json(constant: str) -> None:
    # Python's json reads NaN and Infinity, which are not JSON (RFC 8259).
    raise ValueError(f"{constant} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_not_json)


def _numeric(value: object) -> float:
    """A NumericDate claim as a number; anything else (bool, text, 1e999) is malformed."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError("malformed")
    return value
