from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from fastkit import Conflict, install_exception_handlers


class Signup(BaseModel):
    username: str = Field(min_length=3)
    password: str = Field(min_length=8)


app = FastAPI()
install_exception_handlers(app, style="problem")


@app.post("/signup")
async def signup(body: Signup) -> dict[str, str]:
    if body.username == "admin":
        raise Conflict("Username taken", code=40901, data={"field": "username"})
    return {"username": body.username}


@app.get("/token")
async def token() -> None:
    raise HTTPException(401, "Token expired", headers={"WWW-Authenticate": "Bearer"})


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")
