from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastkit import add_cors, install_exception_handlers, setup

ORIGIN = "https://app.example.com"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}


def build_app(*, cors_first: bool = False, **cors: Any) -> FastAPI:
    cors.setdefault("origins", [ORIGIN])
    app = FastAPI()
    if cors_first:
        add_cors(app, **cors)
        install_exception_handlers(app)
    else:
        install_exception_handlers(app)
        add_cors(app, **cors)

    @app.get("/items")
    async def list_items() -> list[int]:
        return [1, 2]

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    return app


def exposed(headers: Any) -> set[str]:
    return {h.strip().lower() for h in headers["access-control-expose-headers"].split(",")}


# --- preflight and simple requests ---------------------------------------------------------


def test_preflight_from_allowed_origin() -> None:
    response = TestClient(build_app()).options("/items", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-max-age"] == "600"
    assert "GET" in response.headers["access-control-allow-methods"].split(", ")
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("https://evil.example.com", id="other-host"),
        pytest.param("http://app.example.com", id="other-scheme"),
        pytest.param("https://app.example.com:8443", id="other-port"),
        pytest.param("https://app.example.com.evil.io", id="suffix"),
    ],
)
def test_other_origins_are_not_allowed(origin: str) -> None:
    client = TestClient(build_app())
    preflight = client.options("/items", headers={**PREFLIGHT, "Origin": origin})
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/items", headers={"Origin": origin})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


def test_simple_request_from_allowed_origin() -> None:
    response = TestClient(build_app()).get("/items", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert {"x-request-id", "ratelimit", "retry-after"} <= exposed(response.headers)
    # How long the server took is not for other sites' scripts unless asked for.
    assert not {"x-process-time", "server-timing"} & exposed(response.headers)
    assert "origin" in response.headers["vary"].lower()


def test_credentials() -> None:
    client = TestClient(build_app(allow_credentials=True))
    preflight = client.options("/items", headers=PREFLIGHT)
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    simple = client.get("/items", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-allow-origin"] == ORIGIN


def test_any_origin_without_credentials() -> None:
    response = TestClient(build_app(origins=["*"])).get(
        "/items", headers={"Origin": "https://anyone.io"}
    )
    assert response.headers["access-control-allow-origin"] == "*"


def test_custom_max_age_and_methods() -> None:
    client = TestClient(build_app(max_age=0, allow_methods=["get", "post"]))
    response = client.options(
        "/items", headers={**PREFLIGHT, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-max-age"] == "0"
    refused = client.options(
        "/items", headers={**PREFLIGHT, "Access-Control-Request-Method": "PUT"}
    )
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param("https://tenant1.example.com", True, id="subdomain"),
        pytest.param("https://a-b.example.com", True, id="subdomain-with-dash"),
        pytest.param("https://example.com", False, id="apex"),
        pytest.param("http://tenant1.example.com", False, id="other-scheme"),
        pytest.param("https://tenant1.example.com.evil.io", False, id="suffix-must-match-fully"),
    ],
)
def test_origin_regex(origin: str, allowed: bool) -> None:
    client = TestClient(build_app(origins=[], origin_regex=r"https://[a-z0-9-]+\.example\.com"))
    preflight = client.options("/items", headers={**PREFLIGHT, "Origin": origin})
    simple = client.get("/items", headers={"Origin": origin})
    if allowed:
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert simple.headers["access-control-allow-origin"] == origin
    else:
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("cors_first", [False, True], ids=["handlers-first", "cors-first"])
@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/no/such/route", 404, id="404"),
        pytest.param("/items/abc", 422, id="422"),
        pytest.param("/crash", 500, id="500"),
    ],
)
def test_error_responses_carry_cors_headers(cors_first: bool, path: str, status: int) -> None:
    client = TestClient(build_app(cors_first=cors_first), raise_server_exceptions=False)
    response = client.get(path, headers={"Origin": ORIGIN})
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in exposed(response.headers)


# --- configuration mistakes ---------------------------------------------------------------------

BAD_CONFIGS = [
    pytest.param(
        {"origins": ["*"], "allow_credentials": True},
        ValueError,
        "allow_credentials",
        id="star-with-credentials",
    ),
    pytest.param(
        {"origins": ["https://a.com/"]}, ValueError, "write 'https://a.com'", id="trailing-slash"
    ),
    pytest.param(
        {"origins": ["https://a.com/path"]}, ValueError, "write 'https://a.com'", id="path"
    ),
    pytest.param(
        {"origins": ["https://a.com?x=1"]}, ValueError, "write 'https://a.com'", id="query"
    ),
    pytest.param(
        {"origins": ["https://a.com#top"]}, ValueError, "write 'https://a.com'", id="fragment"
    ),
    pytest.param({"origins": ["ftp://a.com"]}, ValueError, "http:// or https://", id="ftp-scheme"),
    pytest.param({"origins": ["a.com"]}, ValueError, "http:// or https://", id="no-scheme"),
    pytest.param({"origins": ["https://"]}, ValueError, "needs a host", id="no-host"),
    pytest.param(
        {"origins": ["https://user:pw@a.com"]}, ValueError, "no credentials", id="userinfo"
    ),
    pytest.param(
        {"origins": ["https://a.com:99999"]}, ValueError, "invalid port", id="port-out-of-range"
    ),
    pytest.param(
        {"origins": ["https://a.com:http"]}, ValueError, "invalid port", id="port-not-a-number"
    ),
    pytest.param(
        {"origins": "https://a.com"}, TypeError, r"write \['https://a.com'\]", id="origins-as-str"
    ),
    pytest.param(
        {"origins": [ORIGIN], "allow_methods": "GET"},
        TypeError,
        "allow_methods",
        id="methods-as-str",
    ),
    pytest.param(
        {"origins": [ORIGIN], "allow_methods": ["GE T"]}, ValueError, "'GE T'", id="bad-method"
    ),
    pytest.param(
        {"origins": [ORIGIN], "allow_headers": ["X Bad"]},
        ValueError,
        "'X Bad'",
        id="bad-header-name",
    ),
    pytest.param(
        {"origins": [ORIGIN], "allow_methods": ["GET, POST"]},
        ValueError,
        "'GET, POST'",
        id="methods-in-one-string",
    ),
    pytest.param(
        {"origins": [ORIGIN], "allow_headers": ["Authorization, X-Token"]},
        ValueError,
        "'Authorization, X-Token'",
        id="headers-in-one-string",
    ),
    pytest.param(
        {"origins": [ORIGIN], "allow_headers": "Authorization"},
        TypeError,
        "allow_headers",
        id="allow-headers-as-str",
    ),
    pytest.param(
        {"origins": [ORIGIN], "expose_headers": "X-Request-ID"},
        TypeError,
        "expose_headers",
        id="expose-headers-as-str",
    ),
    pytest.param(
        {"origins": [ORIGIN], "expose_headers": ["*"], "allow_credentials": True},
        ValueError,
        "ignored with credentials",
        id="expose-star-with-credentials",
    ),
    pytest.param({"origins": [], "origin_regex": "("}, ValueError, "origin_regex", id="bad-regex"),
    pytest.param(
        {"origins": [ORIGIN], "max_age": -1}, ValueError, "max_age", id="negative-max-age"
    ),
    pytest.param({"origins": []}, ValueError, "origins or origin_regex", id="no-origins-no-regex"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_CONFIGS)
def test_bad_configuration_is_refused(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    app = FastAPI()
    with pytest.raises(error, match=match):
        add_cors(app, **options)
    assert app.user_middleware == []  # nothing half-installed


# A message should be one sentence that says what to write.
MESSAGE_CASES = [pytest.param(*case.values, id=case.id) for case in BAD_CONFIGS]


@pytest.mark.parametrize(("options", "error", "match"), MESSAGE_CASES)
def test_bad_configuration_message_says_what_to_write(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error) as excinfo:
        add_cors(FastAPI(), **options)
    message = str(excinfo.value)
    assert message.endswith(".")
    assert not re.search(r"[.!?]\s+[A-Z]", message), "more than one sentence"
    assert "write" in message or "e.g." in message


def test_wildcard_host_origin_is_refused() -> None:
    # Starlette compares origins literally: a wildcard would silently never match.
    with pytest.raises(ValueError, match="origin_regex"):
        add_cors(FastAPI(), origins=["https://*.example.com"])


@pytest.mark.parametrize(
    ("origin", "canonical"),
    [
        pytest.param("https://App.Example.com", "https://app.example.com", id="uppercase-host"),
        pytest.param("https://a.com:443", "https://a.com", id="default-https-port"),
        pytest.param("http://a.com:80", "http://a.com", id="default-http-port"),
    ],
)
def test_origin_browsers_never_send_is_refused_with_the_spelling_to_use(
    origin: str, canonical: str
) -> None:
    with pytest.raises(ValueError, match=f"write '{canonical}'"):
        add_cors(FastAPI(), origins=[origin])


@pytest.mark.parametrize("max_age", [True, 1.5, "600"], ids=["bool", "float", "str"])
def test_max_age_must_be_whole_seconds(max_age: object) -> None:
    with pytest.raises(ValueError, match="max_age=600"):
        add_cors(FastAPI(), origins=["https://a.com"], max_age=max_age)  # type: ignore[arg-type]


def test_timing_is_exposed_when_asked() -> None:
    app = build_app(expose_headers=["X-Request-ID", "X-Process-Time"])
    response = TestClient(app).get("/items", headers={"Origin": ORIGIN})
    assert exposed(response.headers) == {"x-request-id", "x-process-time"}


@pytest.mark.parametrize(
    "regex",
    [
        ".*",
        "https?://.*",
        "https://.+",
        r"https://[^/]+",
        r".*\.invalid(:\d+)?",
        "null|https://a\\.com",
    ],
)
def test_an_origin_regex_admitting_any_site_is_refused_with_credentials(regex: str) -> None:
    with pytest.raises(ValueError, match="admits any origin"):
        add_cors(FastAPI(), origins=[], origin_regex=regex, allow_credentials=True)
    with pytest.raises(ValueError, match="admits any origin"):
        setup(FastAPI(), cors_origin_regex=regex, cors_allow_credentials=True)


def test_an_origin_regex_admitting_any_site_is_allowed_without_credentials() -> None:
    """Public, cookie-less APIs may be read by anyone: that is what the regex says."""
    app = FastAPI()
    add_cors(app, origins=[], origin_regex="https://.*")
    app.get("/items")(lambda: [1])
    response = TestClient(app).get("/items", headers={"Origin": "https://any.site"})
    assert response.headers["access-control-allow-origin"] == "https://any.site"


@pytest.mark.parametrize(
    ("regex", "at"),
    [
        ("https://app.example.com", 11),
        (r"https://[a-z]+\.example.com", 23),
        (r"https://(www|app).example\.com", 17),
    ],
)
def test_an_unescaped_dot_warns(regex: str, at: int) -> None:
    with pytest.warns(UserWarning, match=f"unescaped '.' at {at}") as caught:
        add_cors(FastAPI(), origins=[], origin_regex=regex, allow_credentials=True)
    assert caught[0].filename == __file__  # points at the caller's line


@pytest.mark.parametrize(
    "regex",
    [
        r"https://[a-z0-9-]+\.example\.com",
        r"https://app\.example\.com(:[0-9]+)?",
        r"https://[.a-z]+\.com",
    ],
)
def test_escaped_dots_and_dots_in_classes_do_not_warn(regex: str) -> None:
    add_cors(FastAPI(), origins=[], origin_regex=regex, allow_credentials=True)  # no warning
