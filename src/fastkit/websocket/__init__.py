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
    "websocket_token",
]
