"""The signed-in user's todos: CRUD, numbered pages and cursor pages, sorted by a whitelist.

Another user's todo is answered 404, as if it did not exist: a 403 would confirm its id.
"""

# No ``from __future__ import annotations``: the endpoints are defined in a function and
# their annotations name its local variables, which FastAPI must evaluate.

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from fastkit import EnvelopeRoute, NotFound
from fastkit.caching import check_if_match, etag_of
from fastkit.db import apaginate
from fastkit.pagination import CursorPage, CursorParams, Page, PageParams, SortParams

from ..deps import TODO_SORT_COLUMNS, Services, TodoSort
from ..models import Todo, User
from ..schemas import TodoCreate, TodoOut, TodoUpdate


def todo_etag(todo: Todo) -> str:
    """What a client saw of the todo: any change to it is a new ETag."""
    return etag_of("todo", todo.id, todo.title, todo.done)


def router(services: Services) -> APIRouter:
    Session = Annotated[AsyncSession, services.db.depends]  # db.Session, for type checkers
    # The user is read through the endpoint's own session: one session per request.
    Reader = Annotated[User, Security(services.current_user, scopes=["todos:read"])]
    Writer = Annotated[User, Security(services.current_user, scopes=["todos:write"])]
    # Query models: FastAPI validates the query string into them on the event loop
    # (Depends(Model) would build each one in a worker thread, on every request).
    if TYPE_CHECKING:  # the configured classes are values: checkers see their base class
        Sort = Annotated[SortParams, Query()]
        Cursor = Annotated[CursorParams, Query()]
    else:
        Sort = Annotated[TodoSort, Query()]
        Cursor = Annotated[services.TodoCursor, Query()]
    # Ids are PostgreSQL INTEGERs: a larger one is answered 422 before any query runs.
    TodoID = Annotated[int, Path(ge=1, le=2**31 - 1)]
    todos = APIRouter(prefix="/todos", tags=["todos"], route_class=EnvelopeRoute)
    # Writes spend the user's budget (429 with Retry-After past it); reads are not limited.
    limited = [Depends(services.write_limit)] if services.write_limit else []

    def owned(user: User, done: bool | None = None) -> Select[Any]:
        stmt = select(Todo).where(Todo.owner_id == user.id)
        return stmt if done is None else stmt.where(Todo.done == done)

    async def get_owned(
        session: AsyncSession, user: User, todo_id: int, *, for_update: bool = False
    ) -> Todo:
        query = owned(user).where(Todo.id == todo_id)
        if for_update:  # PostgreSQL: two PATCHes with one If-Match cannot both pass
            query = query.with_for_update()
        todo: Todo | None = await session.scalar(query)
        if todo is None:
            raise NotFound("Todo not found")
        return todo

    @todos.get("")
    async def list_todos(
        user: Reader,
        session: Session,
        params: Annotated[PageParams, Query()],
        sort: Sort,
        done: bool | None = None,
    ) -> Page[TodoOut]:
        """Numbered pages: ``?page=2&page_size=10&sort=title&done=false``."""
        stmt = owned(user, done).order_by(*sort.order_by(TODO_SORT_COLUMNS), Todo.id)
        return await apaginate(session, stmt, params)

    @todos.get("/feed")
    async def feed(
        user: Reader, session: Session, params: Cursor, sort: Sort, done: bool | None = None
    ) -> CursorPage[TodoOut]:
        """Cursor pages: pass ``next_cursor`` back as ``?cursor=``, with the same ``sort``."""
        stmt = owned(user, done).order_by(*sort.order_by(TODO_SORT_COLUMNS))  # + Todo.id
        return await apaginate(session, stmt, params)

    # OpenAPI links: clients and tools (schemathesis' stateful tests) learn that the id in
    # a created todo's body is the {todo_id} of these operations.
    todo_links = {
        name: {"operationId": operation, "parameters": {"todo_id": "$response.body#/data/id"}}
        for name, operation in (
            # The ids fastkit's unique_id_from_tag gives (main.py): <tag>_<function>.
            ("ReadTodo", "todos_read_todo"),
            ("UpdateTodo", "todos_update_todo"),
            ("DeleteTodo", "todos_delete_todo"),
        )
    }

    # Idempotency-Key: a client that retries a POST whose answer it lost gets that answer
    # again, and no second todo.
    @todos.post(
        "",
        status_code=201,
        responses={201: {"links": todo_links}},
        dependencies=[*limited, Depends(services.idempotency)],
    )
    async def create_todo(body: TodoCreate, user: Writer, session: Session) -> TodoOut:
        todo = Todo(owner_id=user.id, **body.model_dump())
        session.add(todo)
        await session.flush()  # assigns the id; the COMMIT runs before the 201 is sent
        return TodoOut.model_validate(todo)

    # The ETag names the todo's version: If-None-Match on reads (304), If-Match on writes
    # (412 when someone changed it since the client read it).
    @todos.get("/{todo_id}")
    async def read_todo(
        todo_id: TodoID, user: Reader, session: Session, response: Response
    ) -> TodoOut:
        todo = await get_owned(session, user, todo_id)
        response.headers["ETag"] = todo_etag(todo)
        return TodoOut.model_validate(todo)

    @todos.patch("/{todo_id}", dependencies=limited)
    async def update_todo(
        todo_id: TodoID,
        body: TodoUpdate,
        user: Writer,
        session: Session,
        request: Request,
        response: Response,
    ) -> TodoOut:
        todo = await get_owned(session, user, todo_id, for_update=True)
        check_if_match(request, todo_etag(todo))
        for field, value in body.model_dump(exclude_unset=True).items():
            if value is not None:  # "title": null changes nothing
                setattr(todo, field, value)
        await session.flush()
        response.headers["ETag"] = todo_etag(todo)
        return TodoOut.model_validate(todo)

    @todos.delete("/{todo_id}", status_code=204, dependencies=limited)
    async def delete_todo(todo_id: TodoID, user: Writer, session: Session) -> None:
        await session.delete(await get_owned(session, user, todo_id))

    return todos
