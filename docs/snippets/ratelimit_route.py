from fastapi import APIRouter, Depends, FastAPI

from fastkit import setup
from fastkit.ratelimit import RateLimit

app = FastAPI()
setup(app)

# 5 at once, then one every 12 s, per client address; and never more than 100 an hour.
search_limit = RateLimit("5/minute;100/hour")


@app.get("/search", dependencies=[Depends(search_limit)])
async def search(q: str) -> dict[str, str]:
    return {"q": q}


# On a router: every route under it is limited, each route with its own budget.
reports = APIRouter(prefix="/reports", dependencies=[Depends(RateLimit("2/second"))])


@reports.get("/{report_id}")
async def read_report(report_id: int) -> dict[str, int]:
    return {"id": report_id}


app.include_router(reports)
