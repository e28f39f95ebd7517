"""From the wheel to a running service: build fastkit's wheel, install it in a fresh virtual
environment, and for each starter run ``fastkit new``, install the project, run its tests
with plain pytest, start it with uvicorn and call it over HTTP (and a websocket for chat).

Nothing of this repository is on the path: the project sees only what the wheel installed.
Slow (a minute or two: the packages come from the index, then from pip's cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.uvicorn_support import free_port, wait_until_up

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "wheel-test-secret-0123456789-0123456789-0123456789"
DEMO_PASSWORD = "demo-password-from-the-wheel-test"


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points at this repository or its venv."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PIP_REQUIRE_VIRTUALENV")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed; its bin directory."""
    work = tmp_path_factory.mktemp("wheel")
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "wheel", "--no-deps", "-w", work / "dist", ROOT)
    [wheel] = (work / "dist").glob("fastkit_fastapi-*.whl")
    run(bin_dir / "python", "-m", "pip", "install", wheel)
    return bin_dir


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("projects")


def generate_and_test(bin_dir: Path, projects: Path, starter: str) -> Path:
    target = projects / f"{starter}-from-wheel"
    out = run(bin_dir / "fastkit", "new", starter, target)
    package = f"{starter}_from_wheel"
    assert f"package {package}" in out
    run(bin_dir / "python", "-m", "pip", "install", "-e", f"{target}[test]")
    # The project's tests, its own pytest settings (warnings are errors there).
    tests = run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=target)
    assert " passed" in tests.splitlines()[-1]
    assert "failed" not in tests.splitlines()[-1]
    return target


@pytest.fixture
def serve(bin_dir: Path) -> Iterator[Callable[..., str]]:
    """``serve(project, package, ready, **env)``: uvicorn from the venv, in the project's
    directory; the base URL once ``ready`` answers 200. Stopped after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(project: Path, package: str, ready: str = "/health", **env: str) -> str:
        port = free_port()
        log = project / "uvicorn.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [bin_dir / "python", "-m", "uvicorn", f"{package}.main:app", "--port", str(port)],
                cwd=project,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(**env),
            )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(process, f"{url}{ready}", lambda: log.read_text(errors="replace"), 30.0)
        return url

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_wheel_ships_the_starters_and_the_command(bin_dir: Path) -> None:
    out = run(bin_dir / "fastkit", "new", "--help")
    assert "minimal" in out
    assert "todo" in out
    assert "chat" in out
    # The starters come from the installed wheel, not from this checkout.
    where = run(
        bin_dir / "python",
        "-c",
        "import fastkit.cli as c; print(c._templates('todo'))",
        cwd=bin_dir,
    )
    assert "site-packages" in where
    assert str(ROOT) not in where


def test_minimal_starter(bin_dir: Path, projects: Path, serve: Callable[..., str]) -> None:
    project = generate_and_test(bin_dir, projects, "minimal")
    url = serve(project, "minimal_from_wheel", "/items")
    page = httpx.get(f"{url}/items", params={"page_size": 1}).json()
    assert page["code"] == 200
    assert page["data"]["total"] == 2
    missing = httpx.get(f"{url}/items/9")
    assert (missing.status_code, missing.json()["message"]) == (404, "Item not found")


def test_todo_starter(bin_dir: Path, projects: Path, serve: Callable[..., str]) -> None:
    project = generate_and_test(bin_dir, projects, "todo")
    url = serve(project, "todo_from_wheel", JWT_SECRET=SECRET, DEMO_PASSWORD=DEMO_PASSWORD)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        token = client.post(
            "/auth/token", data={"username": "demo", "password": DEMO_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = client.post("/todos", json={"title": "from the wheel"}, headers=headers)
        assert created.status_code == 201, created.text
        page = client.get("/todos", params={"page_size": 5}, headers=headers).json()["data"]
        assert [todo["title"] for todo in page["items"]] == ["from the wheel"]
    assert (project / "todo.db").is_file()  # SQLite by default, in the project directory


def test_chat_starter(bin_dir: Path, projects: Path, serve: Callable[..., str]) -> None:
    from websockets.sync.client import connect

    project = generate_and_test(bin_dir, projects, "chat")
    url = serve(project, "chat_from_wheel", JWT_SECRET=SECRET)
    assert httpx.get(url).headers["content-type"].startswith("text/html")
    token = httpx.post(
        f"{url}/auth/token", data={"username": "alice", "password": "wonderland"}
    ).json()["access_token"]
    ws_url = url.replace("http://", "ws://") + "/ws/lobby"
    with connect(ws_url, subprotocols=[token], open_timeout=10) as ws:  # type: ignore[list-item]
        assert json.loads(ws.recv(timeout=10)) == {
            "type": "welcome",
            "room": "lobby",
            "user": "alice",
        }
        ws.send(json.dumps({"text": "hello from the wheel"}))
        assert json.loads(ws.recv(timeout=10))["text"] == "hello from the wheel"


def test_nothing_here_is_on_the_venvs_path(bin_dir: Path) -> None:
    paths = run(bin_dir / "python", "-c", "import sys; print('\\n'.join(sys.path))", cwd=bin_dir)
    assert str(ROOT) not in paths
    assert sys.prefix not in paths
