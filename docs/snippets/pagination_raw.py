from typing import Annotated

from fastapi import FastAPI, Query

from fastkit.pagination import LimitOffsetPage, LimitOffsetParams

app = FastAPI()

# Stands for any source that can skip and take: a Redis list (LRANGE), a search engine,
# another service's API.
EVENTS = [f"event {n}" for n in range(1, 43)]


@app.get("/events")
async def events(params: Annotated[LimitOffsetParams, Query()]) -> LimitOffsetPage[str]:
    raw = params.to_raw_params()  # RawParams(limit=..., offset=...), for every offset params
    window = EVENTS[raw.offset : raw.offset + raw.limit]
    return params.create_page(window, total=len(EVENTS))
