"""``POST /auth/token`` (login), ``/auth/refresh`` and ``/auth/logout``: fastkit's own router."""

from fastapi import APIRouter

from fastkit.auth import auth_router

from ..deps import Services


def router(services: Services) -> APIRouter:
    return auth_router(
        services.auth,
        authenticate=services.authenticate,
        user_scopes=lambda user: user.scope_list,
        login_throttle=services.login_throttle,  # failed logins, in the shared store
    )
