from fastapi import FastAPI

from fastkit import AppError, install_exception_handlers


class InsufficientFunds(AppError):
    status_code = 402
    message = "Insufficient funds"


app = FastAPI()
install_exception_handlers(app)
BALANCE = 3


@app.post("/payments")
async def pay(amount: int) -> dict[str, int]:
    if amount > BALANCE:
        raise InsufficientFunds(code=10001, data={"balance": BALANCE})
    return {"balance": BALANCE - amount}


@app.get("/legacy")
async def legacy() -> None:
    raise AppError(status_code=410)  # message defaults to the status phrase: "Gone"
