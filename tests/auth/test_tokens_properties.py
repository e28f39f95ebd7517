"""Tokens: `TokenService.decode` refuses anything but a token it issued, with a documented
``reason``, and never raises anything but `TokenError`; through an app, any
``Authorization`` header is a 401 envelope unless it carries a valid token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fastkit.auth import JWTKey, TokenClaims, TokenError, TokenService
from tests.auth.support import INVALID_TOKEN, INVALID_TOKEN_CHALLENGE, AuthApp, build_app
from tests.property_support import BASE64URL, call_asgi, examples, mutations, single_edits

SECRET = "property-tests-secret-0123456789abcdef"
ISSUER = "fastkit-property"
AUDIENCE = "fastkit-api"

# The reasons TokenError's docstring lists: the set a refusal's reason must come from.
DOCUMENTED_REASONS = frozenset(
    re.findall(r"``(\w+)``", (TokenError.__doc__ or "").partition("Reasons:")[2])
)


def _pem(key: Any) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


RSA_PRIVATE, RSA_PUBLIC = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PRIVATE, EC_PUBLIC = _pem(ec.generate_private_key(ec.SECP256R1()))

SERVICES = {
    "hs256": TokenService(secret=SECRET, issuer=ISSUER, audience=AUDIENCE),
    "plain": TokenService(secret=SECRET),
    "rs256": TokenService(private_key=RSA_PRIVATE, public_key=RSA_PUBLIC, algorithm="RS256"),
    "es256": TokenService(private_key=EC_PRIVATE, public_key=EC_PUBLIC, algorithm="ES256"),
    "rotation": TokenService(
        keys=[JWTKey.hmac(SECRET, kid="new"), JWTKey.hmac("o" * 32, kid="old")],
        leeway=30,
    ),
}
SERVICE_NAMES = st.sampled_from(sorted(SERVICES))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hand_signed(header: bytes, payload: bytes, secret: bytes) -> str:
    """An HS256 token over any header and payload bytes, signed by hand (PyJWT would not)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def decode_or_refuse(service: TokenService, token: str, **options: Any) -> TokenClaims | None:
    """The claims, or None when refused with a documented reason; anything else escapes."""
    try:
        claims = service.decode(token, **options)
    except TokenError as error:
        refused = error
    else:
        assert isinstance(claims, TokenClaims)
        event("accepted")
        return claims
    assert refused.reason in DOCUMENTED_REASONS, refused.reason
    event(f"refused: {refused.reason}")
    return None


# --- made-up tokens --------------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
SEGMENTS = st.one_of(
    st.text(BASE64URL, min_size=1, max_size=60),
    st.binary(min_size=1, max_size=60).map(b64),
    JSON_VALUES.map(lambda v: b64(json.dumps(v).encode())),
)
ARBITRARY_TOKENS = st.one_of(
    st.text(),
    st.text(BASE64URL + ".=+/ ", max_size=200),
    st.lists(SEGMENTS, min_size=1, max_size=4).map(".".join),
    st.lists(SEGMENTS, min_size=3, max_size=3).map(".".join),
    st.text(BASE64URL + ".", min_size=8180, max_size=8200),  # around the 8192 limit
)


@settings(max_examples=examples(400))
@given(token=ARBITRARY_TOKENS, service=SERVICE_NAMES, kind=st.sampled_from(["access", "refresh"]))
def test_arbitrary_text_is_refused(token: str, service: str, kind: Any) -> None:
    assert decode_or_refuse(SERVICES[service], token, expected_type=kind) is None


@dataclass(frozen=True)
class FromNow:
    """A NumericDate this many seconds from the time the test runs (drawn data stays fixed)."""

    seconds: int


def at_run_time(value: Any) -> Any:
    return int(time.time()) + value.seconds if isinstance(value, FromNow) else value


def claim_values(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, JSON_VALUES, st.floats(), st.integers(min_value=2**63))


CLAIM_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "sub": st.sampled_from(["42", ""]) | st.text(max_size=5),
    "iat": st.builds(FromNow, st.integers(-1000, 1000) | st.sampled_from([-1, 0, 1])),
    "nbf": st.builds(FromNow, st.integers(-1000, 1000) | st.sampled_from([-1, 0, 1])),
    "exp": st.builds(FromNow, st.integers(-1000, 1000) | st.sampled_from([-1, 0, 1, 600])),
    "jti": st.uuids().map(lambda u: u.hex),
    "type": st.sampled_from(["access", "refresh", "Access"]),
    "scopes": st.lists(st.text(max_size=8), max_size=3),
    "iss": st.sampled_from([ISSUER, "someone"]),
    "aud": st.sampled_from([AUDIENCE, [AUDIENCE], [AUDIENCE, "x"], ["x"]]),
    "fam": st.text(max_size=8),
}


@st.composite
def payloads(draw: st.DrawFn, tokens: TokenService) -> dict[str, Any]:
    """The claims of a valid token for ``tokens``, then a few changed, dropped or added."""
    claims: dict[str, Any] = {
        "sub": "42",
        "iat": FromNow(0),
        "nbf": FromNow(0),
        "exp": FromNow(600),
        "jti": "0123456789abcdef",
        "type": "access",
        "scopes": ["items:read"],
    }
    if tokens.issuer is not None:
        claims["iss"] = tokens.issuer
    if tokens.audience is not None:
        claims["aud"] = tokens.audience
    for name in draw(st.lists(st.sampled_from(sorted(CLAIM_VALUES)), max_size=3, unique=True)):
        change = draw(st.sampled_from(["plausible", "plausible", "any", "drop"]))
        if change == "drop":
            claims.pop(name, None)
        elif change == "any":
            claims[name] = draw(claim_values(CLAIM_VALUES[name]))
        else:
            claims[name] = draw(CLAIM_VALUES[name])
    # Extra claims, named like attributes of the claims model too.
    names = st.text(max_size=8) | st.sampled_from(
        ["extras", "model_config", "model_fields", "__class__", "__dict__", "copy", "json"]
    )
    claims.update(draw(st.dictionaries(names, JSON_VALUES, max_size=2)))
    return claims


ODD_HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "HS384", "RS256", "none", "None", "NONE"]) | JSON_VALUES},
    optional={
        "typ": JSON_VALUES,
        "kid": st.sampled_from(["new", "old", "other"]) | JSON_VALUES,
        "crit": JSON_VALUES,
        "b64": st.booleans(),
    },
)


@st.composite
def headers(draw: st.DrawFn, tokens: TokenService) -> dict[str, Any]:
    """Mostly the header ``tokens`` writes (a kid if it has several keys); sometimes odd."""
    if draw(st.integers(0, 3)) == 0:
        return draw(ODD_HEADERS)
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if len(tokens.keys) > 1:
        header["kid"] = draw(st.sampled_from([k.kid for k in tokens.keys]))
    return header


@settings(max_examples=examples(500))
@given(
    data=st.data(),
    service=st.sampled_from(["hs256", "plain", "rotation"]),
    kind=st.sampled_from(["access", "access", "refresh"]),
    raw=st.integers(0, 4).map(lambda n: n == 0),
)
def test_a_token_signed_with_the_key_is_read_strictly(
    data: st.DataObject, service: str, kind: Any, raw: bool
) -> None:
    # As if the key leaked or a bug signed a bad token: the signature passes, then the
    # claims are checked. Refused with a documented reason, or claims that match them.
    tokens = SERVICES[service]
    header = data.draw(headers(tokens))
    secret = (b"o" * 32) if header.get("kid") == "old" else SECRET.encode()
    header_bytes = json.dumps(header).encode()
    payload = data.draw(payloads(tokens))
    payload = {name: at_run_time(value) for name, value in payload.items()}
    payload_bytes = json.dumps(payload, allow_nan=True).encode()
    if raw:  # not JSON, not UTF-8, JSON of another type...
        payload_bytes = payload_bytes[: len(payload_bytes) // 2] + b"\xff"
    token = hand_signed(header_bytes, payload_bytes, secret)
    claims = decode_or_refuse(tokens, token, expected_type=kind)
    if claims is None:
        return
    assert not raw
    assert claims.sub == payload["sub"]
    assert isinstance(claims.sub, str)
    assert claims.jti == payload["jti"]
    assert isinstance(claims.jti, str)
    assert claims.type == payload["type"] == kind
    assert claims.exp == payload["exp"]
    assert claims.exp > time.time() - tokens.leeway - 5  # not expired
    assert claims.iat == payload["iat"]
    assert claims.iss == payload.get("iss")
    assert claims.aud == payload.get("aud")
    if tokens.issuer is not None:
        assert claims.iss == tokens.issuer
    if tokens.audience is not None:
        assert tokens.audience in ([claims.aud] if isinstance(claims.aud, str) else claims.aud)
    else:
        assert claims.aud is None


# --- changed tokens --------------------------------------------------------------------------

SUBJECTS = st.text(min_size=1, max_size=20)
EXTRA_CLAIMS = st.dictionaries(
    st.text(max_size=6).filter(lambda k: k not in TokenClaims.model_fields), JSON_VALUES, max_size=2
)


@settings(max_examples=examples(300))
@given(
    data=st.data(),
    service=SERVICE_NAMES,
    subject=SUBJECTS,
    scopes=st.lists(st.text(max_size=8), max_size=3),
    extra=EXTRA_CLAIMS,
    refresh=st.booleans(),
)
def test_a_changed_token_is_refused(
    data: st.DataObject,
    service: str,
    subject: str,
    scopes: list[str],
    extra: dict[str, Any],
    refresh: bool,
) -> None:
    tokens = SERVICES[service]
    kind = "refresh" if refresh else "access"
    if refresh:
        token = tokens.create_refresh_token(subject, scopes=scopes)
    else:
        token = tokens.create_access_token(subject, scopes=scopes, claims=extra)
    original = tokens.decode(token, expected_type=kind)
    assert original.sub == subject
    mutated = data.draw(mutations(token))
    # A changed token carries changed claims or is another spelling of the same ones
    # (padding, unused bits): either way it is not a token the service issued.
    assert decode_or_refuse(tokens, mutated, expected_type=kind) is None, (token, mutated)


@settings(max_examples=examples(3))
@given(service=st.sampled_from(["hs256", "rotation"]), subject=SUBJECTS)
def test_every_single_edit_of_a_token_is_refused(service: str, subject: str) -> None:
    tokens = SERVICES[service]
    token = tokens.create_access_token(subject, scopes=["items:read"])
    for mutated in single_edits(token):
        assert decode_or_refuse(tokens, mutated) is None, (token, mutated)


def test_a_token_decodes_until_it_expires() -> None:
    # The control for the properties above: untouched tokens are accepted.
    for tokens in SERVICES.values():
        claims = tokens.decode(tokens.create_access_token("42", scopes=["a"]))
        assert claims.sub == "42"
        assert claims.exp - claims.iat == int(dt.timedelta(minutes=15).total_seconds())


# --- through an app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_app() -> AuthApp:
    return build_app(tokens=TokenService(secret=SECRET))


@pytest.fixture(scope="module")
def client(auth_app: AuthApp) -> Iterator[TestClient]:
    with TestClient(auth_app.app) as client:
        yield client


PROTECTED = st.sampled_from(["/me", "/items", "/claims"])


def check_refused(status: int, body: Any, challenge: list[str]) -> None:
    assert status == 401, body
    assert body == INVALID_TOKEN
    assert challenge == [INVALID_TOKEN_CHALLENGE]


@st.composite
def authorization_values(draw: st.DrawFn, app: AuthApp) -> bytes:
    """What an ``Authorization`` header may hold, a valid token excepted."""
    token = app.tokens.create_access_token("1", scopes=["items:read"])
    scheme = draw(st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Bearer", "Basic ", ""]))
    text = draw(
        st.one_of(
            st.text(),
            mutations(token),
            st.just(app.tokens.create_refresh_token("1")),  # the wrong type
            ARBITRARY_TOKENS,
        )
    )
    value = (scheme + text).encode("utf-8")
    return draw(st.just(value) | st.binary(max_size=100) | st.just(b"Bearer " + value))


@settings(max_examples=examples(150))
@given(data=st.data(), path=PROTECTED)
def test_any_authorization_header_bytes_are_a_401(
    auth_app: AuthApp, data: st.DataObject, path: str
) -> None:
    value = data.draw(authorization_values(auth_app))
    sent = call_asgi(auth_app.app, path, headers=[(b"authorization", value)])
    body = json.loads(sent.body)
    challenge = [v.decode("latin-1") for v in sent.header("www-authenticate")]
    check_refused(sent.status, body, challenge)


@settings(max_examples=examples(100))
@given(data=st.data(), path=PROTECTED | st.just("/maybe"))
def test_any_printable_authorization_header_is_a_401(
    client: TestClient, auth_app: AuthApp, data: st.DataObject, path: str
) -> None:
    value = data.draw(authorization_values(auth_app))
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        text = value.decode("latin-1").encode("ascii", "replace").decode("ascii")
    text = "".join(c for c in text if c.isprintable())  # what an HTTP client sends
    response = client.get(path, headers={"Authorization": text})
    if path == "/maybe" and response.status_code == 200:
        # No bearer token at all: the optional user is None (and nothing else passes).
        assert response.json() == {"user": None}
        assert not text.lower().startswith("bearer ")
        return
    check_refused(
        response.status_code, response.json(), response.headers.get_list("www-authenticate")
    )
