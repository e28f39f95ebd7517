from fastapi import FastAPI

from fastkit import RequestIDMiddleware, add_cors, install_exception_handlers

app = FastAPI()
install_exception_handlers(app)
add_cors(app, origins=["https://app.example.com"])
app.add_middleware(RequestIDMiddleware)  # setup(app) installs all of this for you


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")
