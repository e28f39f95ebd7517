from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from fastkit import install_exception_handlers


class Signup(BaseModel):
    username: str = Field(min_length=3)
    password: str = Field(min_length=8)


app = FastAPI()
install_exception_handlers(app)  # style="envelope" is the default


@app.get("/token")
async def token() -> None:
    raise HTTPException(401, "Token expired", headers={"WWW-Authenticate": "Bearer"})


@app.get("/quota")
async def quota() -> None:
    raise HTTPException(429, detail={"limit": 100, "window": "1h"})


@app.get("/report")
async def report() -> None:
    raise HTTPException(304, headers={"ETag": '"v1"'})


@app.post("/signup")
async def signup(body: Signup) -> dict[str, str]:
    return {"username": body.username}


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")
