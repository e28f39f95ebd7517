from fastapi import FastAPI

from fastkit import Conflict, NotFound, TooManyRequests, Unauthorized, install_exception_handlers

app = FastAPI()
install_exception_handlers(app)


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> None:
    raise NotFound(f"Item {item_id} not found")


@app.post("/users")
async def create_user() -> None:
    raise Conflict("Username taken", code=40901, data={"field": "username"})


@app.get("/me")
async def me() -> None:
    raise Unauthorized()  # adds `WWW-Authenticate: Bearer`


@app.get("/search")
async def search() -> None:
    raise TooManyRequests(headers={"Retry-After": "30"})
