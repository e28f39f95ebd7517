import logging

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from fastkit import RequestIDLogFilter, setup

# The SDK is yours to configure: where spans go. Here each span is printed as it ends; in
# production, a BatchSpanProcessor and an OTLP exporter.
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)

handler = logging.StreamHandler()
handler.addFilter(RequestIDLogFilter())  # %(request_id)s, %(trace_id)s, %(span_id)s
handler.setFormatter(
    logging.Formatter("%(levelname)s %(request_id)s trace=%(trace_id)s %(message)s")
)
logging.getLogger("app").addHandler(handler)

app = FastAPI()
setup(app, tracing=True)  # the instrumentation, outside fastkit's layers


@app.get("/hello")
async def hello() -> dict[str, str]:
    logging.getLogger("app").warning("saying hello")  # carries the trace id
    return {"hello": "world"}
