"""Who may do what: writes need an API token, reads need one only when the settings say so."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

from fastapi import Depends, HTTPException, Request

from ..jobs.table import JobStore
from ..store.registry import Registry
from ..store.tokens import check_token
from .settings import ServiceSettings

TOKEN_HELP = "create one with `genaug token create NAME` and send it as 'Authorization: Bearer <token>'"


@dataclass
class ServiceState:
    """What every request shares: settings, the genaug home, the registry and the job table."""

    settings: ServiceSettings
    home: Path
    registry: Registry
    jobs: JobStore


def get_state(request: Request) -> ServiceState:
    """The app's shared state (set up when the app starts)."""
    return request.app.state.genaug


State = Annotated[ServiceState, Depends(get_state)]


def _bearer(request: Request) -> Optional[str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _authenticate(request: Request, state: ServiceState, action: str) -> str:
    token = _bearer(request)
    if token is None:
        raise HTTPException(401, f"{action} needs an API token: {TOKEN_HELP}",
                            headers={"WWW-Authenticate": "Bearer"})
    name = check_token(state.registry, token)
    if name is None:
        raise HTTPException(401, "the API token is not valid (revoked or mistyped): " + TOKEN_HELP,
                            headers={"WWW-Authenticate": "Bearer"})
    return name


def require_writer(request: Request, state: State) -> str:
    """The token name of a request that changes something; 401 without a valid token."""
    return _authenticate(request, state, "this action")


def require_reader(request: Request, state: State) -> Optional[str]:
    """The token name of a read, or None when reads are open."""
    if not state.settings.read_requires_token:
        return None
    return _authenticate(request, state, "reading (this service keeps reads private)")


Writer = Annotated[str, Depends(require_writer)]
Reader = Annotated[Optional[str], Depends(require_reader)]
