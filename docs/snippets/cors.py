from fastapi import FastAPI

from fastkit import RequestIDMiddleware, add_cors, install_exception_handlers

app = FastAPI()
install_exception_handlers(app)
add_cors(
    app,
    origins=["https://app.example.com", "http://localhost:5173"],
    allow_credentials=True,  # the front end sends cookies or an Authorization header
    allow_headers=["Authorization"],
)
app.add_middleware(RequestIDMiddleware)


@app.get("/me")
async def me() -> dict[str, str]:
    return {"name": "ann"}


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")
