"""``POST /users`` (register) and ``GET /users/me``."""

# No ``from __future__ import annotations``: the endpoints are defined in a function and
# their annotations name its local variables, which FastAPI must evaluate.

from typing import Annotated

from fastapi import APIRouter, Depends, Security

from fastkit import Conflict, EnvelopeRoute

from ..deps import Services
from ..models import User
from ..schemas import UserCreate, UserOut


def router(services: Services) -> APIRouter:
    CurrentUser = Annotated[User, Security(services.current_user)]
    users = APIRouter(prefix="/users", tags=["users"], route_class=EnvelopeRoute)

    limited = [Depends(services.register_limit)] if services.register_limit else []

    @users.post("", status_code=201, dependencies=limited)
    async def register(body: UserCreate) -> UserOut:
        user = await services.create_user(body.username, body.password)
        if user is None:
            raise Conflict("Username already taken")
        return UserOut.of(user)

    @users.get("/me")
    async def me(user: CurrentUser) -> UserOut:
        return UserOut.of(user)

    return users
