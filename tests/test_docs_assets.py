"""serve_docs_locally: Swagger UI and ReDoc from the app itself, for /docs without a CDN.

The browser proof (Chromium with every outside request refused) is in
tests/examples/test_browser.py.

No ``from __future__ import annotations``: FastAPI evaluates the endpoints' annotations.
"""

import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import fastkit
from fastkit import MissingDependencyError, SPAStaticFiles
from fastkit.docs_assets import serve_docs_locally

CDN_HOSTS = ("cdn.jsdelivr.net", "fonts.googleapis.com", "fastapi.tiangolo.com")


def local_app(**fastapi_options: object) -> FastAPI:
    app = FastAPI(title="Local", **fastapi_options)  # type: ignore[arg-type]
    app.get("/items")(lambda: [1])
    fastkit.setup(app)
    return serve_docs_locally(app)


def test_docs_pages_load_every_file_from_the_app() -> None:
    client = TestClient(local_app())
    for page, files in {
        "/docs": ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"],
        "/redoc": ["redoc.standalone.js", "favicon.png"],
    }.items():
        html = client.get(page).text
        assert not any(host in html for host in CDN_HOSTS), page
        for name in files:
            assert f"/docs-assets/{name}" in html
            asset = client.get(f"/docs-assets/{name}")
            assert asset.status_code == 200
            assert len(asset.content) > 1000
    assert client.get("/docs/oauth2-redirect").status_code == 200
    # The OpenAPI schema is unchanged: the pages are not operations.
    assert set(client.get("/openapi.json").json()["paths"]) == {"/items"}


def test_the_docs_policy_still_holds_for_the_local_pages() -> None:
    response = TestClient(local_app()).get("/docs")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'sha256-" in policy


def test_the_apps_docs_settings_are_kept() -> None:
    app = local_app(
        docs_url="/api/docs",
        redoc_url=None,
        swagger_ui_parameters={"docExpansion": "none"},
    )
    client = TestClient(app, root_path="/svc")
    html = client.get("/api/docs").text
    assert '"docExpansion": "none"' in html
    assert "/svc/docs-assets/swagger-ui-bundle.js" in html
    assert "/svc/openapi.json" in html
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs").status_code == 404


def test_a_single_page_app_mounted_at_the_root_does_not_shadow_them(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>spa</html>")
    app = FastAPI()
    app.mount("/", SPAStaticFiles(directory=tmp_path))
    serve_docs_locally(app)
    client = TestClient(app)
    assert "swagger-ui" in client.get("/docs").text
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


@pytest.mark.parametrize("path", ["docs-assets", "/", "/docs-assets/"])
def test_a_bad_path_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="path must look like"):
        serve_docs_locally(FastAPI(), path=path)


def test_an_app_without_docs_is_refused() -> None:
    with pytest.raises(ValueError, match="no docs pages"):
        serve_docs_locally(FastAPI(docs_url=None, redoc_url=None))


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi_offline", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"fastkit-fastapi\[offline-docs\]"):
        serve_docs_locally(FastAPI())
