"""Configuration from the environment (or a ``.env`` file), read once at startup."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fastkit.ratelimit import parse_rate


class Settings(BaseSettings):
    """Every field is read from the environment variable of the same name in capitals.

    ``DATABASE_URL=postgresql+asyncpg://app:secret@db:5432/app``, ``REDIS_URL=redis://...``,
    ``JWT_SECRET=$(python -c "import secrets; print(secrets.token_hex(32))")``...
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # SQLite file next to where the server runs; PostgreSQL for several workers or machines.
    database_url: str = "sqlite+aiosqlite:///./todo.db"
    # PostgreSQL only: the schema the tables live in (search_path); None for the default.
    database_schema: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    # Logged-out and rotated tokens and rate limits: in this process's memory, or in Redis
    # for many workers (every key under REDIS_PREFIX).
    redis_url: str | None = None
    redis_prefix: str = Field("todo:", min_length=1)

    # Rate limits (fastkit.ratelimit syntax; empty for none). Writes count per user, sign-ups
    # per client address; failed logins per username and per client (auth_router's defaults).
    write_rate_limit: str | None = "60/minute;1000/hour"
    register_rate_limit: str | None = "20/minute;100/hour"
    # Failed logins per username and per client (auth_router's LoginThrottle defaults).
    login_throttle: bool = True
    # Proxies of yours in front of the app that append to X-Forwarded-For (0: none, and the
    # header is ignored: a client could forge it).
    trusted_proxies: int = Field(0, ge=0)

    # HS256 secret, at least 32 bytes, the same in every worker. None: a random one, with a
    # warning; tokens then die with the process and workers refuse each other's tokens.
    jwt_secret: SecretStr | None = None
    access_token_minutes: int = Field(15, ge=1)
    refresh_token_days: int = Field(7, ge=1)

    # argon2 costs; the defaults are argon2's own. Tests lower them to run fast.
    password_hash_time_cost: int = Field(3, ge=1)
    password_hash_memory_kib: int = Field(65536, ge=8)

    # Created on first start; None for no demo user. No password: a random one, logged.
    demo_username: str | None = "demo"
    demo_password: SecretStr | None = None

    # The level for the app's and fastkit's log lines; None leaves logging alone.
    log_level: str | None = "INFO"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        # Hosting platforms hand out postgres:// URLs; the app needs the async driver.
        for plain in ("postgres://", "postgresql://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url[len(plain) :]
        return url

    @field_validator("write_rate_limit", "register_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)  # a ValueError that says how to write it
        return value

    @field_validator(
        "redis_url",
        "database_schema",
        "demo_username",
        "log_level",
        "write_rate_limit",
        "register_rate_limit",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # REDIS_URL= in a .env file means "not set", not "an empty URL".
        return None if value == "" else value

    @field_validator("jwt_secret", mode="before")
    @classmethod
    def _secret_length(cls, value: object) -> object:
        if value == "":
            return None
        if isinstance(value, str) and len(value.encode()) < 32:
            raise ValueError(
                "JWT_SECRET must be at least 32 bytes; make one with "
                'python -c "import secrets; print(secrets.token_hex(32))"'
            )
        return value
