from pathlib import Path

from fastapi import APIRouter, FastAPI

from fastkit import SPAStaticFiles, setup

# The front end's build output (`npm run build`), next to this file.
FRONTEND_BUILD = Path(__file__).parent / "frontend" / "build"

app = setup(FastAPI())
api = APIRouter(prefix="/api")


@api.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app.include_router(api)  # API routes first: the mount at "/" matches every path
app.mount("/", SPAStaticFiles(directory=FRONTEND_BUILD, exclude_prefixes=["/api"]), name="spa")
