"""Websockets: a connection manager with rooms, brokers for many workers, token auth."""

from fastkit.websocket.auth import WebSocketAuth, websocket_token
from fastkit.websocket.brokers import Broker, MemoryBroker, RedisBroker
from fastkit.websocket.manager import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SEND_TIMEOUT,
    CLOSE_TOO_SLOW,
    Connection,
    ConnectionManager,
)
from fastkit.websocket.refusals import WebSocketRefused, refuse, websocket_exception_handler

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_SEND_TIMEOUT",
    "CLOSE_TOO_SLOW",
    "Broker",
    "Connection",
    "ConnectionManager",
    "MemoryBroker",
    "RedisBroker",
    "WebSocketAuth",
    "WebSocketRefused",
    "refuse",
    "websocket_exception_handler",
    "websocket_token",
]
