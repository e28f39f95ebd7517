from fastapi import FastAPI, Request, Response

from fastkit import ServiceUnavailable, install_exception_handlers, render_error


class PaymentGatewayError(Exception):
    """Raised by a third-party client you don't control."""


class PaymentsDown(ServiceUnavailable):
    """Your own error: a subclass needs no handler."""

    message = "Payments are down, retry later"


app = FastAPI()
install_exception_handlers(app)


@app.exception_handler(PaymentGatewayError)
async def gateway_error(request: Request, exc: PaymentGatewayError) -> Response:
    return render_error(request, ServiceUnavailable("Payments are down", code=50301))


@app.post("/checkout")
async def checkout() -> None:
    raise PaymentGatewayError("upstream said no")


@app.post("/refund")
async def refund() -> None:
    raise PaymentsDown(headers={"Retry-After": "60"})
