from fastapi import FastAPI

from fastkit import setup
from fastkit.ratelimit import RateLimit, client_ip

# Per client address. This app runs behind one proxy of its own (a load balancer) that
# appends to X-Forwarded-For: trusted_proxies=1. Without such a proxy keep client_ip(),
# or anyone could pick a new address per request by sending the header.
per_client = RateLimit("100/second", key=client_ip(trusted_proxies=1), name="global")

app = FastAPI()
# Ahead of routing: 404s, bad bodies and every route count.
setup(app, rate_limit=per_client, rate_limit_exempt=["/health"])


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}
