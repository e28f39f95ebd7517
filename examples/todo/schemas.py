"""What the API reads and answers: Pydantic models, apart from the tables."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .models import User


def _as_utc(value: dt.datetime) -> dt.datetime:
    # SQLite keeps no time zone: the stored UTC times come back naive.
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


UTCDatetime = Annotated[dt.datetime, AfterValidator(_as_utc)]


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")
    # A maximum, so that nobody sends megabytes to hash.
    password: str = Field(min_length=8, max_length=1024)


class UserOut(BaseModel):
    id: int
    username: str
    scopes: list[str]
    created_at: UTCDatetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            scopes=user.scope_list,
            created_at=user.created_at,
        )


class TodoCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    done: bool = False


class TodoUpdate(BaseModel):
    """``PATCH``: only the fields sent change."""

    title: str | None = Field(None, min_length=1, max_length=200)
    done: bool | None = None


class TodoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    done: bool
    created_at: UTCDatetime
