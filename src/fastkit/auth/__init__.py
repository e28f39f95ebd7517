"""JWT auth: password hashing, tokens, dependencies, revocation and a ready router."""

from fastkit.auth.dependencies import InvalidToken, JWTAuth
from fastkit.auth.passwords import PasswordHasher, PasswordHasherBusy
from fastkit.auth.revocation import (
    MemoryRevocationStore,
    RedisRevocationStore,
    RevocationPolicy,
    RevocationStore,
)
from fastkit.auth.router import TokenResponse, auth_router
from fastkit.auth.tokens import JWTKey, TokenClaims, TokenError, TokenService

__all__ = [
    "InvalidToken",
    "JWTAuth",
    "JWTKey",
    "MemoryRevocationStore",
    "PasswordHasher",
    "PasswordHasherBusy",
    "RedisRevocationStore",
    "RevocationPolicy",
    "RevocationStore",
    "TokenClaims",
    "TokenError",
    "TokenResponse",
    "TokenService",
    "auth_router",
]
