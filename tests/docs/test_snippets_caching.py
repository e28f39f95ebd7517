"""The snippet of docs/caching.md does what the page says it does."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.docs._snippets import load


def test_orders_with_idempotency_keys_etags_and_a_cached_report() -> None:
    module = load("caching_app")
    with TestClient(module.app) as client:
        empty = client.get("/reports/daily")
        assert (empty.json(), empty.headers["x-cache"]) == ({"orders": 0}, "miss")
        assert client.get("/reports/daily").headers["x-cache"] == "hit"

        key = {"Idempotency-Key": "4f1c2a"}
        created = client.post("/orders", json={"item": "pen"}, headers=key)
        replayed = client.post("/orders", json={"item": "pen"}, headers=key)
        assert (created.status_code, replayed.status_code) == (201, 201)
        assert replayed.headers["idempotent-replayed"] == "true"
        assert replayed.json() == created.json()
        assert len(module.ORDERS) == 1
        assert client.post("/orders", json={"item": "ink"}, headers=key).status_code == 422

        report = client.get("/reports/daily")  # invalidated by the order
        assert (report.json(), report.headers["x-cache"]) == ({"orders": 1}, "miss")

        read = client.get("/orders/1")
        etag = read.headers["etag"]
        assert client.get("/orders/1", headers={"If-None-Match": etag}).status_code == 304
        updated = client.put("/orders/1", json={"item": "ink"}, headers={"If-Match": etag})
        assert updated.json()["version"] == 2
        stale = client.put("/orders/1", json={"item": "cap"}, headers={"If-Match": etag})
        assert stale.status_code == 412
        assert module.ORDERS[1]["item"] == "ink"
