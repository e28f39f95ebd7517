from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastkit import SPAStaticFiles, install_exception_handlers

INDEX = "<!doctype html><title>spa</title><div id=app></div>"
APP_JS = "console.log('spa');"
LOGO = "<svg xmlns='http://www.w3.org/2000/svg'/>"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NOT_FOUND = {"code": 404, "message": "Not Found", "data": None}


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "app.js").write_text(APP_JS)
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "logo.svg").write_text(LOGO)
    return tmp_path


def build_app(directory: Path, mount_at: str = "/", **options: Any) -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.mount(mount_at, SPAStaticFiles(directory=directory, **options))
    return app


@pytest.fixture
def client(build_dir: Path) -> TestClient:
    return TestClient(build_app(build_dir, exclude_prefixes=["/api"]))


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        pytest.param("/app.js", "javascript", APP_JS, id="file"),
        pytest.param("/assets/logo.svg", "image/svg+xml", LOGO, id="nested-file"),
        pytest.param("/", "text/html", INDEX, id="root"),
    ],
)
def test_existing_files_are_served(
    client: TestClient, path: str, content_type: str, body: str
) -> None:
    response = client.get(path, headers={"Accept": "*/*"})
    assert response.status_code == 200
    assert content_type in response.headers["content-type"]
    assert response.text == body


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/settings/profile", id="nested-route"),
        pytest.param("/settings", id="route"),
        pytest.param("/assets/unknown-page", id="route-under-asset-dir"),
        pytest.param("/apiary", id="starts-like-excluded-prefix"),
    ],
)
@pytest.mark.parametrize("accept", [BROWSER, "text/html"], ids=["browser", "text-html"])
def test_client_route_gets_index_for_browsers(client: TestClient, path: str, accept: str) -> None:
    response = client.get(path, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == INDEX


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        pytest.param("/settings/profile", "application/json", id="json-client"),
        pytest.param("/settings/profile", "*/*", id="fetch-any"),
        pytest.param("/settings/profile", None, id="no-accept"),
        pytest.param("/missing.js", BROWSER, id="missing-file-for-browser"),
        pytest.param("/assets/missing.svg", BROWSER, id="missing-nested-file"),
        pytest.param("/api/unknown", BROWSER, id="excluded-prefix"),
        pytest.param("/api", BROWSER, id="excluded-prefix-itself"),
        pytest.param("/api/v2/users/3", BROWSER, id="deep-under-excluded-prefix"),
    ],
)
def test_real_404s_stay_404_in_envelope(client: TestClient, path: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    if accept is None:
        client.headers.pop("Accept", None)
    response = client.get(path, headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "prefix", ["/api", "api", "/api/", "api/"], ids=["slash", "bare", "trailing", "both"]
)
def test_exclude_prefix_spellings_are_equivalent(build_dir: Path, prefix: str) -> None:
    client = TestClient(build_app(build_dir, exclude_prefixes=[prefix]))
    assert client.get("/api/unknown", headers={"Accept": BROWSER}).status_code == 404
    assert client.get("/settings", headers={"Accept": BROWSER}).text == INDEX


def test_api_routes_before_the_mount_still_work(client: TestClient) -> None:
    response = client.get("/api/health", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_writes_to_the_mount_are_405(client: TestClient, method: str) -> None:
    response = client.request(method, "/settings/profile", headers={"Accept": BROWSER})
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "Method Not Allowed", "data": None}


def test_head_of_client_route_gets_index_headers(client: TestClient) -> None:
    response = client.head("/settings/profile", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.content == b""


def test_mounted_under_a_path(build_dir: Path) -> None:
    client = TestClient(build_app(build_dir, mount_at="/app", exclude_prefixes=["/data"]))
    assert client.get("/app/settings", headers={"Accept": BROWSER}).text == INDEX
    assert client.get("/app/app.js").text == APP_JS
    assert client.get("/app/data/x", headers={"Accept": BROWSER}).status_code == 404
    assert client.get("/elsewhere", headers={"Accept": BROWSER}).status_code == 404


def test_custom_index(build_dir: Path) -> None:
    (build_dir / "shell.html").write_text("<title>shell</title>")
    client = TestClient(build_app(build_dir, index="shell.html"))
    assert client.get("/settings", headers={"Accept": BROWSER}).text == "<title>shell</title>"


@pytest.mark.parametrize(
    "index",
    [
        pytest.param("../x.html", id="parent"),
        pytest.param("", id="empty"),
        pytest.param("sub/index.html", id="subfolder"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param(".", id="dot"),
        pytest.param("..", id="dotdot"),
    ],
)
def test_index_must_be_a_file_name(build_dir: Path, index: str) -> None:
    with pytest.raises(ValueError, match="index must be a file name"):
        SPAStaticFiles(directory=build_dir, index=index)


def test_missing_directory_is_refused_unless_unchecked(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        SPAStaticFiles(directory=tmp_path / "dist")
    SPAStaticFiles(directory=tmp_path / "dist", check_dir=False)


def test_build_with_its_own_404_page_still_falls_back(build_dir: Path) -> None:
    # Static exports (Next, Nuxt, Astro...) ship a 404.html; StaticFiles(html=True) would
    # answer every missing path with it, hiding both the fallback and the JSON 404s.
    (build_dir / "404.html").write_text("<h1>custom 404</h1>")
    client = TestClient(build_app(build_dir, exclude_prefixes=["/api"]))
    route = client.get("/settings", headers={"Accept": "text/html"})
    assert (route.status_code, route.text) == (200, INDEX)
    for path, accept in [
        ("/settings", "application/json"),
        ("/api/x", "text/html"),
        ("/x.js", "text/html"),
    ]:
        response = client.get(path, headers={"Accept": accept})
        assert response.status_code == 404, path
        assert response.json() == {"code": 404, "message": "Not Found", "data": None}, path


@pytest.mark.parametrize(
    "path",
    [
        "/.env",
        "/.git/config",
        "/.git/",
        "/assets/.DS_Store",
        "/assets/.hidden/logo.svg",
        "/.well-known/.secret",
        "/.settings",  # a dot segment without a file extension: no fallback either
    ],
)
@pytest.mark.parametrize("accept", [BROWSER, "*/*"])
def test_hidden_files_are_never_served(build_dir: Path, path: str, accept: str) -> None:
    for folder in (".git", "assets/.hidden", ".well-known"):
        (build_dir / folder).mkdir(parents=True, exist_ok=True)
    (build_dir / ".env").write_text("SECRET_KEY=hunter2")
    (build_dir / ".git" / "config").write_text("[remote]")
    (build_dir / "assets" / ".DS_Store").write_text("junk")
    (build_dir / "assets" / ".hidden" / "logo.svg").write_text(LOGO)
    (build_dir / ".well-known" / ".secret").write_text("nope")
    client = TestClient(build_app(build_dir, exclude_prefixes=["/api"]))
    response = client.get(path, headers={"Accept": accept})
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_well_known_files_are_served(build_dir: Path) -> None:
    (build_dir / ".well-known").mkdir()
    (build_dir / ".well-known" / "security.txt").write_text("Contact: mailto:sec@example.com")
    client = TestClient(build_app(build_dir))
    response = client.get("/.well-known/security.txt")
    assert response.status_code == 200
    assert response.text == "Contact: mailto:sec@example.com"
    mounted = TestClient(build_app(build_dir, mount_at="/app"))
    assert mounted.get("/app/.well-known/security.txt").status_code == 200
    assert mounted.get("/app/.env").status_code == 404
