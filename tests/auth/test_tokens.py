"""fastkit.auth.tokens: creating and strictly verifying JWTs; every rejection has its reason.

The attack tokens are built here with PyJWT (or by hand where PyJWT refuses to build them),
never with the service under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import warnings
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from fastkit.auth import JWTKey, TokenClaims, TokenError, TokenService
from fastkit.auth import tokens as tokens_module
from tests.auth.conftest import KeyPair

SECRET = "fastkit-tests-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-of-at-least-32-bytes!!"
ISSUER = "fastkit-tests"
AUDIENCE = "fastkit-api"


# --- helpers -----------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def payload(**overrides: Any) -> dict[str, Any]:
    """A valid access-token payload for the ``service`` fixture; ``None`` drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "42",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "0123456789abcdef0123456789abcdef",
        "type": "access",
        "scopes": [],
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def hs256(claims: dict[str, Any], secret: str | bytes = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def hand_signed_hs256(
    header: dict[str, Any], claims: dict[str, Any] | str, secret: bytes = SECRET.encode()
) -> str:
    """An HS256 token signed by hand, for what PyJWT refuses to build.

    PyJWT will not use a PEM key as an HMAC secret (its own defence against algorithm
    confusion), nor encode a non-string ``kid``; ``claims`` may be a raw payload segment.
    """
    body = claims if isinstance(claims, str) else b64url_json(claims)
    signing_input = f"{b64url_json(header)}.{body}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def reason(service: TokenService, token: Any, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as info:
        service.decode(token, **kwargs)
    return info.value.reason


@pytest.fixture
def service() -> TokenService:
    return TokenService(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def rs256(rsa_keys: KeyPair) -> TokenService:
    return TokenService(
        private_key=rsa_keys.private_pem, public_key=rsa_keys.public_pem, algorithm="RS256"
    )


# --- creating and decoding ---------------------------------------------------------------


def test_access_token_round_trip(service: TokenService) -> None:
    before = int(time.time())
    token = service.create_access_token("42", scopes=["items:write", "items:read", "items:read"])
    claims = service.decode(token)

    assert isinstance(claims, TokenClaims)
    assert claims.sub == "42"
    assert claims.type == "access"
    assert claims.scopes == ["items:read", "items:write"]  # sorted, deduplicated
    assert claims.iss == ISSUER
    assert claims.aud == AUDIENCE
    assert claims.fam is None
    assert before <= claims.iat <= int(time.time())
    assert claims.nbf == claims.iat
    assert claims.exp - claims.iat == 15 * 60
    assert len(claims.jti) == 32
    assert claims.extras == {}


def test_refresh_token_round_trip(service: TokenService) -> None:
    token = service.create_refresh_token("42", scopes=["items:read"])
    claims = service.decode(token, expected_type="refresh")
    assert claims.type == "refresh"
    assert claims.sub == "42"
    assert claims.scopes == ["items:read"]
    assert claims.exp - claims.iat == 7 * 24 * 3600
    assert claims.fam  # a new family per login


def test_each_token_gets_its_own_jti_and_each_login_its_own_family(
    service: TokenService,
) -> None:
    first = service.decode(service.create_refresh_token("42"), expected_type="refresh")
    second = service.decode(service.create_refresh_token("42"), expected_type="refresh")
    assert first.jti != second.jti
    assert first.fam != second.fam

    same = service.create_refresh_token("42", family=first.fam)
    assert service.decode(same, expected_type="refresh").fam == first.fam
    access = service.create_access_token("42", family=first.fam)
    assert service.decode(access).fam == first.fam


def test_lifetimes_are_configurable() -> None:
    service = TokenService(secret=SECRET, access_ttl=dt.timedelta(minutes=5), refresh_ttl=3600)
    access = service.decode(service.create_access_token("1"))
    refresh = service.decode(service.create_refresh_token("1"), expected_type="refresh")
    assert access.exp - access.iat == 300
    assert refresh.exp - refresh.iat == 3600


def test_extra_claims_are_kept(service: TokenService) -> None:
    token = service.create_access_token("42", claims={"tenant": "acme", "roles": ["admin"]})
    claims = service.decode(token)
    assert claims.extras == {"tenant": "acme", "roles": ["admin"]}
    assert claims.tenant == "acme"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "claim", ["sub", "exp", "iat", "nbf", "jti", "type", "scopes", "iss", "aud", "fam", "scope"]
)
def test_extra_claims_cannot_set_standard_claims(service: TokenService, claim: str) -> None:
    with pytest.raises(ValueError, match=claim):
        service.create_access_token("42", claims={claim: "admin"})


@pytest.mark.parametrize("subject", ["", 42, None], ids=["empty", "int", "none"])
def test_subject_must_be_a_non_empty_string(service: TokenService, subject: Any) -> None:
    with pytest.raises(ValueError, match="subject"):
        service.create_access_token(subject)
    with pytest.raises(ValueError, match="subject"):
        service.create_refresh_token(subject)


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("", id="empty"),
        pytest.param("s" * 31, id="31-chars"),
        pytest.param(b"s" * 31, id="31-bytes"),
    ],
)
def test_short_hs_secret_is_refused(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenService(secret=secret)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        JWTKey.hmac(secret, kid="k")


@pytest.mark.parametrize(("algorithm", "size"), [("HS384", 48), ("HS512", 64)])
def test_hs_secret_must_be_as_long_as_the_hash(algorithm: str, size: int) -> None:
    with pytest.raises(ValueError, match=f"at least {size} bytes"):
        JWTKey.hmac("s" * 32, algorithm=algorithm)


def test_32_byte_secret_is_enough() -> None:
    for secret in ("s" * 32, b"s" * 32):
        service = TokenService(secret=secret)
        assert service.decode(service.create_access_token("1")).sub == "1"


def _key_options(name: str, rsa_keys: KeyPair) -> dict[str, Any]:
    options: dict[str, dict[str, Any]] = {
        "nothing": {},
        "private-key-alone": {"private_key": rsa_keys.private_pem, "algorithm": "RS256"},
        "secret-and-public-key": {"secret": SECRET, "public_key": rsa_keys.public_pem},
        "secret-and-keys": {"secret": SECRET, "keys": [JWTKey.hmac(SECRET)]},
        "public-key-and-keys": {
            "public_key": rsa_keys.public_pem,
            "algorithm": "RS256",
            "keys": [JWTKey.hmac(SECRET)],
        },
    }
    return options[name]


@pytest.mark.parametrize(
    "name",
    [
        "nothing",
        "private-key-alone",
        "secret-and-public-key",
        "secret-and-keys",
        "public-key-and-keys",
    ],
)
def test_exactly_one_key_option(name: str, rsa_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        TokenService(**_key_options(name, rsa_keys))


@pytest.mark.parametrize("other", ["secret", "keys"])
def test_private_key_with_secret_or_keys_is_refused(other: str, rsa_keys: KeyPair) -> None:
    options: dict[str, Any] = (
        {"secret": SECRET} if other == "secret" else {"keys": [JWTKey.hmac(SECRET)]}
    )
    with pytest.raises(ValueError, match="exactly one of"):
        TokenService(private_key=rsa_keys.private_pem, **options)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"access_ttl": 0}, "positive", id="access-ttl-0"),
        pytest.param({"refresh_ttl": dt.timedelta(seconds=-1)}, "positive", id="refresh-ttl-neg"),
        pytest.param({"leeway": -1}, "leeway", id="negative-leeway"),
        pytest.param({"algorithm": "RS256"}, "HMAC algorithm", id="secret-with-rs256"),
        pytest.param({"algorithm": "none"}, "HMAC algorithm", id="secret-with-none"),
    ],
)
def test_invalid_options_raise_value_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenService(secret=SECRET, **kwargs)


def test_asymmetric_key_errors(rsa_keys: KeyPair, ec_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match="Asymmetric algorithm"):
        TokenService(public_key=rsa_keys.public_pem, algorithm="HS256")
    with pytest.raises(ValueError, match="Cannot load the ES256 key"):
        TokenService(public_key=rsa_keys.public_pem, algorithm="ES256")
    with pytest.raises(ValueError, match="Cannot load the RS256 key"):
        TokenService(public_key=b"not a pem", algorithm="RS256")
    with pytest.raises(ValueError, match="Cannot load the RS256 key"):
        TokenService(
            public_key=rsa_keys.public_pem, private_key=ec_keys.private_pem, algorithm="RS256"
        )


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(
            [JWTKey.hmac(SECRET, kid="a"), JWTKey.hmac(OTHER_SECRET, kid="a")], id="same-kid"
        ),
        pytest.param([JWTKey.hmac(SECRET, kid="a"), JWTKey.hmac(OTHER_SECRET)], id="no-kid"),
    ],
)
def test_several_keys_need_distinct_kids(keys: list[JWTKey]) -> None:
    with pytest.raises(ValueError, match="own kid"):
        TokenService(keys=keys)


# --- every rejection reason --------------------------------------------------------------


def test_wrong_signature_is_bad_signature(service: TokenService) -> None:
    assert reason(service, hs256(payload(), OTHER_SECRET)) == "bad_signature"


def test_tampered_payload_is_bad_signature(service: TokenService) -> None:
    header, body, signature = service.create_access_token("42").split(".")
    claims = unb64url_json(body)
    claims["sub"] = "1"  # become someone else, keep the original signature
    claims["scopes"] = ["admin"]
    assert reason(service, f"{header}.{b64url_json(claims)}.{signature}") == "bad_signature"


def test_stripped_signature_is_bad_signature(service: TokenService) -> None:
    header, body, _ = service.create_access_token("42").split(".")
    assert reason(service, f"{header}.{body}.") == "bad_signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(service: TokenService, alg: str) -> None:
    token = f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(payload())}."
    assert reason(service, token) == "alg_none"


def test_alg_none_is_refused_with_a_signature_too(service: TokenService) -> None:
    token = f"{b64url_json({'alg': 'none'})}.{b64url_json(payload())}.{b64url(b'sig')}"
    assert reason(service, token) == "alg_none"


def test_unconfigured_algorithm_is_refused(service: TokenService) -> None:
    with warnings.catch_warnings():
        # PyJWT warns that 37 bytes are short for HS512; the attacker does not care.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = jwt.encode(payload(), SECRET, algorithm="HS512")  # right secret, wrong alg
    assert reason(service, token) == "algorithm_not_allowed"


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    rs256: TokenService, rsa_keys: KeyPair
) -> None:
    # Algorithm confusion: the public key is public, so an attacker can HMAC with it.
    token = hand_signed_hs256(
        {"alg": "HS256", "typ": "JWT"}, payload(iss=None, aud=None), rsa_keys.public_pem
    )
    assert reason(rs256, token) == "algorithm_not_allowed"


def test_hs256_with_the_kid_of_an_rsa_key_is_refused(rsa_keys: KeyPair) -> None:
    # During a migration from HS256 to RS256 both algorithms are allowed: the key chosen by
    # kid must still match the token's algorithm.
    service = TokenService(
        keys=[
            JWTKey.asymmetric(
                public_key=rsa_keys.public_pem, private_key=rsa_keys.private_pem, kid="rsa-1"
            ),
            JWTKey.hmac(SECRET, kid="hs-old"),
        ]
    )
    forged = hand_signed_hs256(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
        payload(iss=None, aud=None),
        rsa_keys.public_pem,
    )
    assert reason(service, forged) == "algorithm_not_allowed"
    # ...while an honest token of either key passes.
    assert service.decode(hs256(payload(iss=None, aud=None), kid="hs-old")).sub == "42"
    assert service.decode(service.create_access_token("7")).sub == "7"


def test_expired_token_is_refused(service: TokenService) -> None:
    now = int(time.time())
    token = hs256(payload(iat=now - 100, nbf=now - 100, exp=now - 10))
    assert reason(service, token) == "expired"


def test_leeway_accepts_a_slightly_expired_token() -> None:
    now = int(time.time())
    token = hs256(payload(iat=now - 100, nbf=now - 100, exp=now - 10, iss=None, aud=None))
    assert TokenService(secret=SECRET, leeway=30).decode(token).sub == "42"
    assert reason(TokenService(secret=SECRET, leeway=5), token) == "expired"


def test_not_yet_valid_token_is_refused(service: TokenService) -> None:
    token = hs256(payload(nbf=int(time.time()) + 60))
    assert reason(service, token) == "not_yet_valid"


def test_leeway_accepts_a_slightly_early_token() -> None:
    token = hs256(payload(nbf=int(time.time()) + 10, iss=None, aud=None))
    assert TokenService(secret=SECRET, leeway=30).decode(token).sub == "42"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"iss": "someone-else"}, "wrong_issuer", id="wrong-issuer"),
        # PyJWT 2.10.0 matched a str issuer as a sequence (CVE-2024-53861): a part is not it.
        pytest.param({"iss": ISSUER[1:-1]}, "wrong_issuer", id="part-of-the-issuer"),
        pytest.param({"aud": "another-api"}, "wrong_audience", id="wrong-audience"),
        pytest.param({"aud": ["another-api", "a-third"]}, "wrong_audience", id="wrong-aud-list"),
        pytest.param({"aud": ""}, "wrong_audience", id="empty-aud"),
        pytest.param({"aud": []}, "wrong_audience", id="empty-aud-list"),
        pytest.param({"sub": None}, "missing_sub", id="missing-sub"),
        pytest.param({"exp": None}, "missing_exp", id="missing-exp"),
        pytest.param({"jti": None}, "missing_jti", id="missing-jti"),
        pytest.param({"iat": None}, "missing_iat", id="missing-iat"),
        pytest.param({"type": "refresh"}, "wrong_type", id="refresh-as-access"),
        pytest.param({"type": None}, "wrong_type", id="no-type"),
        pytest.param({"type": "id"}, "wrong_type", id="unknown-type"),
        pytest.param({"scopes": "admin"}, "invalid_claims", id="scopes-not-a-list"),
    ],
)
@pytest.mark.parametrize("claim_checks", ["fast", "public"])
def test_claim_checks(
    service: TokenService,
    overrides: dict[str, Any],
    expected: str,
    claim_checks: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PyJWT's claim checks are called directly where PyJWT has the method, else through
    # its public jwt.decode; both must refuse alike.
    monkeypatch.setattr(tokens_module._ClaimChecks, "_fast", claim_checks == "fast")
    assert reason(service, hs256(payload(**overrides))) == expected
    now = int(time.time())
    assert reason(service, hs256(payload(exp=now - 60))) == "expired"
    assert reason(service, hs256(payload(nbf=now + 60))) == "not_yet_valid"
    assert service.decode(service.create_access_token("42")).sub == "42"


def test_audience_list_containing_ours_is_accepted(service: TokenService) -> None:
    claims = service.decode(hs256(payload(aud=["another-api", AUDIENCE])))
    assert claims.aud == ["another-api", AUDIENCE]


def test_refresh_and_access_tokens_are_not_interchangeable(service: TokenService) -> None:
    access = service.create_access_token("42")
    refresh = service.create_refresh_token("42")
    assert reason(service, refresh) == "wrong_type"
    assert reason(service, access, expected_type="refresh") == "wrong_type"


def test_unknown_kid_is_refused() -> None:
    service = TokenService(keys=[JWTKey.hmac(SECRET, kid="k1")])
    assert reason(service, hs256(payload(iss=None, aud=None), kid="k2")) == "unknown_kid"


def test_missing_kid_with_several_keys_is_refused() -> None:
    service = TokenService(
        keys=[JWTKey.hmac(SECRET, kid="k1"), JWTKey.hmac(OTHER_SECRET, kid="k2")]
    )
    assert reason(service, hs256(payload(iss=None, aud=None))) == "unknown_kid"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "HS256", "kid": 1}, id="kid-int"),
        pytest.param({"alg": "HS256", "kid": ["k1"]}, id="kid-list"),
        pytest.param({"alg": "HS256", "crit": ["exp"]}, id="crit-unsupported"),
        pytest.param({"alg": "HS256", "crit": "b64"}, id="crit-not-a-list"),
    ],
)
def test_invalid_header_parameters_are_refused(header: dict[str, Any]) -> None:
    # The header is read before any signature check, so anyone can send these: anything
    # but a TokenError would be a 500 for an unauthenticated client.
    service = TokenService(keys=[JWTKey.hmac(SECRET, kid="k1")])
    assert reason(service, hand_signed_hs256(header, payload(iss=None, aud=None)))


def test_issuer_and_audience_are_required_when_configured(service: TokenService) -> None:
    assert reason(service, hs256(payload(iss=None))).startswith("missing_")
    assert reason(service, hs256(payload(aud=None))).startswith("missing_")
    null_issuer = hand_signed_hs256({"alg": "HS256", "typ": "JWT"}, {**payload(), "iss": None})
    assert reason(service, null_issuer) == "missing_iss"


@pytest.mark.parametrize("aud", ["", [], "some-api", ["some-api"]])
def test_any_audience_is_refused_by_a_service_without_one(aud: Any) -> None:
    # A token meant for an audience (even an empty one) is not meant for us.
    service = TokenService(secret=SECRET)
    assert reason(service, hs256({**payload(iss=None, aud=None), "aud": aud})) == "wrong_audience"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="one-segment"),
        pytest.param("a.b", id="two-segments"),
        pytest.param("a.b.c", id="three-junk-segments"),
        pytest.param("....", id="only-dots"),
        pytest.param("a.b.c.d.e", id="five-segments"),
        pytest.param("x" * 10_000, id="10000-chars"),
        pytest.param("héllo.wörld.ünïcode", id="non-ascii"),
        pytest.param("日本.語.トークン", id="cjk"),
        pytest.param("a\x00.b.c", id="nul-byte"),
        pytest.param(f"{b64url(b'[]')}.{b64url_json({})}.", id="header-not-an-object"),
        pytest.param(f"{b64url(b'{')}.{b64url_json({})}.", id="header-not-json"),
        pytest.param(hand_signed_hs256({"alg": "HS256"}, b64url(b"{")), id="payload-not-json"),
        pytest.param(hand_signed_hs256({"alg": "HS256"}, b64url_json([1])), id="payload-a-list"),
        pytest.param(None, id="none"),
        pytest.param(b"a.b.c", id="bytes"),
    ],
)
def test_malformed_tokens(service: TokenService, token: Any) -> None:
    assert reason(service, token) == "malformed"


def test_oversized_but_otherwise_valid_token_is_malformed(service: TokenService) -> None:
    token = service.create_access_token("42", claims={"padding": "x" * 9000})
    assert reason(service, token) == "malformed"


@pytest.mark.parametrize("token", ["\ud800", "\udcff.a.b"], ids=["alone", "in-header"])
def test_lone_surrogate_is_malformed(service: TokenService, token: str) -> None:
    assert reason(service, token) == "malformed"


# --- asymmetric keys ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_rsa_round_trip(rsa_keys: KeyPair, algorithm: str) -> None:
    service = TokenService(
        private_key=rsa_keys.private_pem, public_key=rsa_keys.public_pem, algorithm=algorithm
    )
    token = service.create_access_token("42", scopes=["items:read"])
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = service.decode(token)
    assert (claims.sub, claims.scopes) == ("42", ["items:read"])
    refresh = service.create_refresh_token("42")
    assert service.decode(refresh, expected_type="refresh").sub == "42"


def test_es256_round_trip(ec_keys: KeyPair) -> None:
    service = TokenService(
        private_key=ec_keys.private_pem, public_key=ec_keys.public_pem, algorithm="ES256"
    )
    token = service.create_access_token("42")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert service.decode(token).sub == "42"


def test_token_of_another_rsa_key_is_bad_signature(
    rs256: TokenService, other_rsa_keys: KeyPair
) -> None:
    other = TokenService(
        private_key=other_rsa_keys.private_pem,
        public_key=other_rsa_keys.public_pem,
        algorithm="RS256",
    )
    assert reason(rs256, other.create_access_token("42")) == "bad_signature"


def test_verify_only_service_decodes_but_cannot_create(
    rs256: TokenService, rsa_keys: KeyPair
) -> None:
    verifier = TokenService(public_key=rsa_keys.public_pem, algorithm="RS256")
    assert verifier.decode(rs256.create_access_token("42")).sub == "42"
    refresh = rs256.create_refresh_token("42")
    assert verifier.decode(refresh, expected_type="refresh").sub == "42"
    with pytest.raises(RuntimeError, match="only verify"):
        verifier.create_access_token("42")
    with pytest.raises(RuntimeError, match="only verify"):
        verifier.create_refresh_token("42")


# --- key rotation ------------------------------------------------------------------------


def test_rotation_old_tokens_still_verify_and_new_ones_carry_the_new_kid() -> None:
    old_key = JWTKey.hmac(SECRET, kid="2024-01")
    new_key = JWTKey.hmac(OTHER_SECRET, kid="2024-06")
    before = TokenService(keys=[old_key])
    old_token = before.create_access_token("42")
    assert jwt.get_unverified_header(old_token)["kid"] == "2024-01"

    after = TokenService(keys=[new_key, old_key])  # the new key first: it signs
    assert after.decode(old_token).sub == "42"
    new_token = after.create_access_token("43")
    assert jwt.get_unverified_header(new_token)["kid"] == "2024-06"
    assert after.decode(new_token).sub == "43"
    assert reason(before, new_token) == "unknown_kid"  # old deployments don't know it yet

    retired = TokenService(keys=[new_key])  # once the old tokens have expired
    assert reason(retired, old_token) == "unknown_kid"


def test_rotation_the_first_key_that_can_sign_signs(rsa_keys: KeyPair) -> None:
    verify_only = JWTKey(kid="retired", algorithm="HS256", verification_key=SECRET.encode())
    signer = JWTKey.asymmetric(
        public_key=rsa_keys.public_pem, private_key=rsa_keys.private_pem, kid="rsa-2"
    )
    service = TokenService(keys=[verify_only, signer])
    header = jwt.get_unverified_header(service.create_access_token("42"))
    assert (header["alg"], header["kid"]) == ("RS256", "rsa-2")
    # The retired HS256 key still verifies what it signed.
    assert service.decode(hs256(payload(iss=None, aud=None), kid="retired")).sub == "42"


def test_rotation_service_without_any_signing_key_cannot_create(rsa_keys: KeyPair) -> None:
    service = TokenService(keys=[JWTKey.asymmetric(public_key=rsa_keys.public_pem, kid="pub")])
    with pytest.raises(RuntimeError, match="only verify"):
        service.create_access_token("42")


# --- strict parsing (fastkit parses the compact JWS itself, once) -------------------------


def _with_signature(token: str, signature: str) -> str:
    header, body, _ = token.split(".")
    return f"{header}.{body}.{signature}"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t + "=", id="padding"),
        pytest.param(lambda t: t.replace(".", ". ", 1), id="space-after-dot"),
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: t.replace("-", "+").replace("_", "/") + "+/", id="std-alphabet"),
        pytest.param(lambda t: t + ".", id="four-segments"),
    ],
)
def test_lenient_base64_spellings_are_malformed(service: TokenService, mutate: Any) -> None:
    token = service.create_access_token("42")
    assert reason(service, mutate(token)) == "malformed"


def test_a_second_spelling_of_the_same_signature_is_refused(service: TokenService) -> None:
    # A 32-byte HMAC signature is 43 base64url characters: the last one carries 2 unused
    # bits. Setting them spells the same bytes differently; a lenient decoder accepts it.
    token = service.create_access_token("42")
    signature = token.rsplit(".", 1)[1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    variant = signature[:-1] + alphabet[last | 1 if not last & 1 else last & ~1]
    assert base64.urlsafe_b64decode(variant + "=") == base64.urlsafe_b64decode(signature + "=")
    assert reason(service, _with_signature(token, variant)) == "malformed"
    assert service.decode(token).sub == "42"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "HS256", "b64": False}, id="b64-false"),
        pytest.param({"alg": "HS256", "crit": ["b64"], "b64": False}, id="crit-b64"),
    ],
)
def test_jws_extensions_are_refused(header: dict[str, Any]) -> None:
    service = TokenService(secret=SECRET)
    assert reason(service, hand_signed_hs256(header, payload(iss=None, aud=None))) == "malformed"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"exp": "2099-01-01"}, "malformed", id="exp-text"),
        pytest.param({"exp": True}, "malformed", id="exp-bool"),
        pytest.param({"iat": [1]}, "malformed", id="iat-list"),
        pytest.param({"nbf": "now"}, "malformed", id="nbf-text"),
        pytest.param({"sub": 42}, "malformed", id="sub-int"),
        pytest.param({"jti": {"a": 1}}, "malformed", id="jti-object"),
        pytest.param({"iat": int(time.time()) + 3600}, "not_yet_valid", id="iat-future"),
        pytest.param({"aud": [AUDIENCE, 7]}, "wrong_audience", id="aud-list-non-string"),
        pytest.param({"aud": {"x": AUDIENCE}}, "wrong_audience", id="aud-object"),
        pytest.param({"exp": int(time.time()) + 600.5}, "invalid_claims", id="exp-fraction"),
    ],
)
def test_claim_types(service: TokenService, overrides: dict[str, Any], expected: str) -> None:
    assert reason(service, hs256(payload(**overrides))) == expected


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_malformed(service: TokenService, constant: str) -> None:
    claims = json.dumps(payload(), separators=(",", ":"))
    body = b64url(claims.replace('"exp":', f'"exp":{constant},"x":', 1).encode())
    assert reason(service, hand_signed_hs256({"alg": "HS256"}, body)) == "malformed"


def test_audience_on_a_token_for_a_service_without_one_is_refused() -> None:
    service = TokenService(secret=SECRET)
    assert reason(service, hs256(payload(iss=None, aud="someone"))) == "wrong_audience"
    assert service.decode(hs256(payload(iss=None, aud=None))).sub == "42"


def test_a_pem_key_as_hmac_secret_is_refused_at_construction(rsa_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match=r"JWTKey\.asymmetric"):
        TokenService(secret=rsa_keys.public_pem)


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_decode_agrees_with_pyjwt(algorithm: str) -> None:
    # The same token through PyJWT's own decode gives the same claims.
    secret = "s" * 64
    service = TokenService(secret=secret, algorithm=algorithm, issuer=ISSUER, audience=AUDIENCE)
    token = service.create_access_token("42", scopes=["b", "a"], claims={"tenant": "t1"})
    expected = jwt.decode(token, secret, algorithms=[algorithm], issuer=ISSUER, audience=AUDIENCE)
    assert service.decode(token).model_dump(exclude_none=True) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"sub":"\xff"}', id="not-utf8"),
        pytest.param(b"[" * 5_000, id="deeply-nested"),
        pytest.param(
            json.dumps(payload(iss=None, aud=None, exp=None)).encode()[:-1] + b', "exp": 1e999}',
            id="exp-overflows-to-infinity",
        ),
    ],
)
def test_hostile_payload_bytes_are_malformed(body: bytes) -> None:
    service = TokenService(secret=SECRET)
    token = hand_signed_hs256({"alg": "HS256"}, b64url(body))
    assert len(token) <= 8192
    assert reason(service, token) == "malformed"
