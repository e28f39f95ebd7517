"""fastkit.caching: ETags and 304/412, ResponseCache, Idempotency keys; on MemoryStore always
and on RedisStore when FASTKIT_TEST_REDIS_URL is set."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastkit import setup
from fastkit.caching import Idempotency, ResponseCache, check_if_match, etag_of
from fastkit.stores import MemoryStore, RedisStore, Store
from tests.uvicorn_support import free_port, uvicorn_process

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10: httpx2 needs 3.11+
    import httpx  # type: ignore[no-redef]

REDIS_URL = os.environ.get("FASTKIT_TEST_REDIS_URL")


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if not REDIS_URL:
        pytest.skip("FASTKIT_TEST_REDIS_URL is not set")
    yield RedisStore(REDIS_URL, prefix=f"fastkit-test:{uuid.uuid4().hex}:", timeout=10.0)


class OrderIn(BaseModel):
    item: str


def make_app(store: Store) -> FastAPI:
    app = FastAPI()
    setup(app, caching=True)
    app.state.calls = 0
    app.state.orders = []
    app.state.version = 1
    cache = ResponseCache(ttl=30, tags=["orders"], store=store)
    idempotent = Idempotency(store=store)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "pen"}

    @app.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @app.get("/missing")
    async def missing() -> None:
        from fastkit import NotFound

        raise NotFound("No such thing")

    @app.get("/report", dependencies=[Depends(cache)])
    async def report(request: Request, q: str = "") -> dict[str, Any]:
        request.app.state.calls += 1
        await asyncio.sleep(0.05)
        return {"orders": len(request.app.state.orders), "q": q, "n": request.app.state.calls}

    @app.post("/orders", status_code=201, dependencies=[Depends(idempotent)])
    async def order(body: OrderIn, request: Request) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        if body.item == "boom":
            raise RuntimeError("the payment provider is down")
        request.app.state.orders.append(body.item)
        await cache.invalidate("orders")
        return {"id": len(request.app.state.orders), "item": body.item}

    @app.get("/thing")
    async def thing(request: Request) -> dict[str, Any]:
        return {"version": request.app.state.version}

    @app.put("/thing")
    async def put_thing(request: Request) -> dict[str, Any]:
        check_if_match(request, etag_of("thing", request.app.state.version))
        request.app.state.version += 1
        return {"version": request.app.state.version}

    return app


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(make_app(store), raise_server_exceptions=False) as client:
        yield client


# --- ETags -----------------------------------------------------------------------------------


def test_get_json_gets_a_strong_etag_and_a_matching_if_none_match_a_304(
    client: TestClient,
) -> None:
    first = client.get("/items/1")
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')  # quoted and strong (no W/)
    assert client.get("/items/1").headers["etag"] == etag  # the same body, the same tag
    assert client.get("/items/2").headers["etag"] != etag
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = client.get("/items/1", headers={"If-None-Match": header})
        assert not_modified.status_code == 304, header
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        assert "content-type" not in not_modified.headers
        assert "x-request-id" in not_modified.headers  # still through every layer
    changed = client.get("/items/1", headers={"If-None-Match": '"stale"'})
    assert (changed.status_code, changed.json()) == (200, {"id": 1, "name": "pen"})


def test_no_etag_where_it_does_not_apply(client: TestClient) -> None:
    assert "etag" not in client.get("/text").headers  # not JSON
    missing = client.get("/missing", headers={"If-None-Match": "*"})
    assert missing.status_code == 404  # errors are never 304
    assert "etag" not in missing.headers
    created = client.post("/orders", json={"item": "ink"})
    assert created.status_code == 201
    assert "etag" not in created.headers  # not a GET


def test_if_match_refuses_a_stale_write_with_412(client: TestClient) -> None:
    current = etag_of("thing", 1)
    assert client.put("/thing", headers={"If-Match": '"stale"'}).status_code == 412
    assert client.put("/thing", headers={"If-Match": f"W/{current}"}).status_code == 412
    ok = client.put("/thing", headers={"If-Match": current})
    assert ok.json() == {"version": 2}
    refused = client.put("/thing", headers={"If-Match": current})  # that version is gone
    assert refused.status_code == 412
    assert refused.json()["code"] == 412
    assert "read it again" in refused.json()["message"]
    assert client.put("/thing", headers={"If-Match": "*"}).status_code == 200
    assert client.put("/thing").status_code == 200  # no If-Match: nothing to check


def test_etag_of_is_stable() -> None:
    assert etag_of("todo", 1, 3) == etag_of("todo", 1, 3)
    assert etag_of("todo", 1, 3) != etag_of("todo", 1, 4)
    assert etag_of("x") == '"' + etag_of("x")[1:-1] + '"'


# --- the response cache ----------------------------------------------------------------------


def test_a_cached_answer_is_served_until_invalidated(client: TestClient) -> None:
    first = client.get("/report", params={"q": "a"})
    assert (first.json()["n"], first.headers["x-cache"]) == (1, "miss")
    assert first.headers["cache-control"] == "private, max-age=30"
    assert first.headers["vary"] == "Authorization, Cookie"
    again = client.get("/report", params={"q": "a"})
    assert (again.json()["n"], again.headers["x-cache"]) == (1, "hit")
    assert again.headers["etag"] == first.headers["etag"]
    assert client.get("/report", params={"q": "b"}).json()["n"] == 2  # another query
    # A write invalidates the tag: the next read computes again.
    assert client.post("/orders", json={"item": "ink"}).status_code == 201
    fresh = client.get("/report", params={"q": "a"})
    assert (fresh.json(), fresh.headers["x-cache"]) == ({"orders": 1, "q": "a", "n": 3}, "miss")
    # A cached answer still gets its 304.
    etag = fresh.headers["etag"]
    assert (
        client.get("/report", params={"q": "a"}, headers={"If-None-Match": etag}).status_code == 304
    )


def test_one_callers_answer_never_reaches_another(client: TestClient) -> None:
    ann = client.get("/report", headers={"Authorization": "Bearer ann"})
    bob = client.get("/report", headers={"Authorization": "Bearer bob"})
    anonymous = client.get("/report")
    assert [r.headers["x-cache"] for r in (ann, bob, anonymous)] == ["miss"] * 3
    assert len({r.json()["n"] for r in (ann, bob, anonymous)}) == 3
    again = client.get("/report", headers={"Authorization": "Bearer ann"})
    assert (again.headers["x-cache"], again.json()["n"]) == ("hit", ann.json()["n"])


def test_an_identity_function_scopes_entries_per_user_not_per_token(store: Store) -> None:
    app = FastAPI()
    setup(app, caching=True)
    calls: list[str] = []
    per_user = ResponseCache(ttl=30, store=store, identity=lambda r: r.headers.get("x-user"))

    @app.get("/mine", dependencies=[Depends(per_user)])
    async def mine(request: Request) -> dict[str, str]:
        calls.append(request.headers.get("x-user", "-"))
        return {"user": request.headers.get("x-user", "-")}

    with TestClient(app) as client:
        ann1 = client.get("/mine", headers={"x-user": "ann", "Authorization": "Bearer t1"})
        ann2 = client.get("/mine", headers={"x-user": "ann", "Authorization": "Bearer t2"})
        bob = client.get("/mine", headers={"x-user": "bob", "Authorization": "Bearer t1"})
        anonymous = client.get("/mine")  # None: the credentials' hash, here none at all
    assert [r.headers["x-cache"] for r in (ann1, ann2, bob, anonymous)] == [
        "miss",
        "hit",
        "miss",
        "miss",
    ]
    assert calls == ["ann", "bob", "-"]


def test_one_computation_per_key_under_a_stampede(store: Store) -> None:
    async def stampede() -> tuple[set[int], int]:
        app = make_app(store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.gather(*(client.get("/report") for _ in range(20)))
        return {answer.json()["n"] for answer in answers}, app.state.calls

    seen, calls = asyncio.run(stampede())
    assert (seen, calls) == ({1}, 1)


# --- idempotency keys ------------------------------------------------------------------------


def test_a_retry_gets_the_first_answer_without_running_again(client: TestClient) -> None:
    key = {"Idempotency-Key": "order-1"}
    first = client.post("/orders", json={"item": "ink"}, headers=key)
    retry = client.post("/orders", json={"item": "ink"}, headers=key)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json() == {"id": 1, "item": "ink"}
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert client.app.state.orders == ["ink"]  # type: ignore[attr-defined]
    other = client.post("/orders", json={"item": "cap"}, headers=key)
    assert other.status_code == 422
    assert "another request" in other.json()["message"]
    # Keys are per caller: bob's "order-1" is his own.
    bob = client.post(
        "/orders", json={"item": "ink"}, headers={**key, "Authorization": "Bearer bob"}
    )
    assert (bob.status_code, bob.json()["id"]) == (201, 2)


def test_a_5xx_is_not_kept_and_a_retry_runs_again(client: TestClient) -> None:
    key = {"Idempotency-Key": "boom-1"}
    assert client.post("/orders", json={"item": "boom"}, headers=key).status_code == 500
    again = client.post("/orders", json={"item": "boom"}, headers=key)
    assert again.status_code == 500
    assert "idempotent-replayed" not in again.headers


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 256, b"has space", b"tab\tkey", "é".encode()],
    ids=["empty", "too-long", "space", "tab", "non-ascii"],
)
def test_a_malformed_key_is_400(client: TestClient, value: bytes) -> None:
    response = client.post("/orders", json={"item": "ink"}, headers={"Idempotency-Key": value})
    assert response.status_code == 400
    assert "Idempotency-Key must be 1 to 255 visible ASCII characters" in response.json()["message"]
    assert client.app.state.orders == []  # type: ignore[attr-defined]


def test_fifty_concurrent_posts_with_one_key_create_one_order(store: Store) -> None:
    async def burst() -> tuple[list[int], list[str]]:
        app = make_app(store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/orders", json={"item": "ink"}, headers={"Idempotency-Key": "same"}
                    )
                    for _ in range(50)
                )
            )
        return [answer.status_code for answer in answers], app.state.orders

    statuses, orders = asyncio.run(burst())
    assert orders == ["ink"]
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}  # the others: replayed, or told to retry


def test_the_dependencies_need_the_middleware() -> None:
    app = FastAPI()
    cache = ResponseCache()

    @app.get("/x", dependencies=[Depends(cache)])
    async def x() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="CachingMiddleware"), TestClient(app) as client:
        client.get("/x")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ResponseCache(ttl=0), "positive"),
        (lambda: ResponseCache(tags="todos"), "list of non-empty names"),
        (lambda: ResponseCache(tags=[""]), "list of non-empty names"),
        (lambda: Idempotency(ttl=-1), "positive"),
    ],
)
def test_bad_configuration(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- ETags across two uvicorn workers --------------------------------------------------------


def test_etags_are_equal_across_two_workers(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["tests.caching_e2e_app:app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", "2", "--log-level", "warning"]
    with uvicorn_process(
        args,
        log_path=tmp_path / "out.log",
        ready_url=f"{url}/items/1",
        env=dict(os.environ),
        startup_timeout=30,
    ):
        etags: dict[str, set[str]] = {}
        requests = 0
        while len(etags) < 2:
            with httpx.Client(base_url=url) as client:  # a new connection: either worker
                response = client.get("/items/1")
            etags.setdefault(response.headers["x-worker"], set()).add(response.headers["etag"])
            requests += 1
            assert requests < 1000, "one worker answered every connection"
        [one], [other] = etags.values()
        assert one == other
        with httpx.Client(base_url=url) as client:
            assert client.get("/items/1", headers={"If-None-Match": one}).status_code == 304


def test_a_body_in_several_chunks_and_one_over_the_limit() -> None:
    from fastapi.responses import StreamingResponse

    app = FastAPI()
    setup(app, caching=True)

    @app.get("/chunks")
    async def chunks() -> StreamingResponse:
        async def parts() -> Any:
            yield b'{"a": '
            yield b"1}"

        return StreamingResponse(parts(), media_type="application/json")

    @app.get("/big")
    async def big() -> StreamingResponse:
        async def parts() -> Any:
            for _ in range(3):
                yield b"x" * (600 * 1024)

        return StreamingResponse(parts(), media_type="application/json")

    with TestClient(app) as client:
        whole = client.get("/chunks")
        assert whole.content == b'{"a": 1}'
        assert whole.headers["etag"] == _quoted_hash(b'{"a": 1}')
        big_answer = client.get("/big")
        assert len(big_answer.content) == 3 * 600 * 1024  # nothing lost, nothing hashed
        assert "etag" not in big_answer.headers


def _quoted_hash(body: bytes) -> str:
    import hashlib

    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


# --- review edges ----------------------------------------------------------------------------


def edge_app(store: Store, *, with_setup: bool = True) -> FastAPI:
    app = FastAPI()
    if with_setup:
        setup(app, caching=True)
    else:
        from fastkit.caching import CachingMiddleware

        app.add_middleware(CachingMiddleware)  # alone: no handler for stored answers
    app.state.calls = 0
    per_item = ResponseCache(ttl=30, store=store, lock_timeout=30)
    idempotent = Idempotency(store=store)

    @app.get("/items/{item_id}", dependencies=[Depends(per_item)])
    async def item(item_id: int, request: Request, response: Response) -> dict[str, int]:
        request.app.state.calls += 1
        response.headers["Vary"] = "Accept-Language"
        return {"id": item_id}

    @app.get("/gone", dependencies=[Depends(per_item)])
    async def gone(request: Request) -> None:
        request.app.state.calls += 1
        await asyncio.sleep(0.05)
        raise HTTPException(404, "gone")

    @app.patch("/items/{item_id}", dependencies=[Depends(idempotent)])
    async def patch(item_id: int, request: Request) -> dict[str, int]:
        request.app.state.calls += 1
        return {"patched": item_id}

    return app


def test_path_parameters_are_part_of_the_keys(store: Store) -> None:
    with TestClient(edge_app(store)) as client:
        assert client.get("/items/1").json() == {"id": 1}
        two = client.get("/items/2")
        assert (two.json(), two.headers["x-cache"]) == ({"id": 2}, "miss")
        # The app's Vary is kept, and the cache's joins it.
        assert two.headers["vary"] == "Accept-Language, Authorization, Cookie"
        key = {"Idempotency-Key": "same"}
        assert client.patch("/items/1", headers=key).json() == {"patched": 1}
        second = client.patch("/items/2", headers=key)
        assert second.json() == {"patched": 2}
        assert "idempotent-replayed" not in second.headers


def test_waiters_do_not_wait_out_the_lock_when_the_first_answer_is_not_stored(
    store: Store,
) -> None:
    async def five() -> list[int]:
        app = edge_app(store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.get("/gone") for _ in range(5))), 10
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(five()) == [404] * 5  # lock_timeout is 30 s: nobody waited it out


def test_an_api_key_header_is_an_identity(store: Store) -> None:
    with TestClient(edge_app(store)) as client:
        ann = client.get("/items/1", headers={"X-API-Key": "ann-key"})
        bob = client.get("/items/1", headers={"X-API-Key": "bob-key"})
        assert [ann.headers["x-cache"], bob.headers["x-cache"]] == ["miss", "miss"]


def test_the_middleware_alone_answers_stored_responses(store: Store) -> None:
    with TestClient(edge_app(store, with_setup=False)) as client:
        assert client.get("/items/1").status_code == 200
        again = client.get("/items/1")
        assert (again.status_code, again.headers["x-cache"]) == (200, "hit")
        assert again.json() == {"id": 1}


def test_head_gets_the_etag_of_get_and_its_304() -> None:
    app = FastAPI()
    setup(app, caching=True)

    @app.api_route("/doc", methods=["GET", "HEAD"])
    async def doc() -> dict[str, str]:
        return {"title": "fastkit"}

    with TestClient(app) as client:
        etag = client.get("/doc").headers["etag"]
        head = client.head("/doc")
        assert (head.status_code, head.headers["etag"], head.content) == (200, etag, b"")
        assert client.head("/doc", headers={"If-None-Match": etag}).status_code == 304
