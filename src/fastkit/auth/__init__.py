"""JWT auth: password hashing, tokens, dependencies, revocation and a ready router."""

from fastkit.auth.dependencies import JWTAuth
from fastkit.auth.passwords import PasswordHasher, PasswordHasherBusy
from fastkit.auth.revocation import MemoryRevocationStore, RedisRevocationStore, RevocationStore
from fastkit.auth.router import TokenResponse, auth_router
from fastkit.auth.tokens import JWTKey, TokenClaims, TokenError, TokenService

__all__ = [
    "JWTAuth",
    "JWTKey",
    "MemoryRevocationStore",
    "PasswordHasher",
    "PasswordHasherBusy",
    "RedisRevocationStore",
    "RevocationStore",
    "TokenClaims",
    "TokenError",
    "TokenResponse",
    "TokenService",
    "auth_router",
]
