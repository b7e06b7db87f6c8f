"""Who may do what: writes need an API token, reads need one only when the settings say so.

Ownership: a dataset, a model or a job belongs to the token that created it through the
service. Only that token, or an admin token (``genaug token create NAME --admin``), may delete,
replace or cancel it. Things created outside the service (the CLI, the library) have no owner
token: only an admin may delete them over HTTP.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

from fastapi import Depends, HTTPException, Request

from ..jobs.table import JobStore
from ..store.registry import Registry
from ..store.tokens import Caller, token_caller
from .settings import ServiceSettings

TOKEN_HELP = ("ask the person who runs this service for an API token (they make one with: genaug token create "
              "NAME), then send it as 'Authorization: Bearer <token>'")


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


def _authenticate(request: Request, state: ServiceState, action: str) -> Caller:
    token = _bearer(request)
    if token is None:
        raise HTTPException(401, f"{action} needs an API token: {TOKEN_HELP}",
                            headers={"WWW-Authenticate": "Bearer"})
    caller = token_caller(state.registry, token)
    if caller is None:
        raise HTTPException(401, "the API token is not valid (revoked or mistyped): " + TOKEN_HELP,
                            headers={"WWW-Authenticate": "Bearer"})
    return caller


def require_writer(request: Request, state: State) -> Caller:
    """Who sends a request that changes something; 401 without a valid token."""
    return _authenticate(request, state, "this action")


def require_reader(request: Request, state: State) -> Optional[Caller]:
    """Who sends a read; None for an anonymous read when reads are open (there a token that is
    not valid counts as none: a stale token in a browser must not break open pages)."""
    if not state.settings.read_requires_token:
        token = _bearer(request)
        return token_caller(state.registry, token) if token else None
    return _authenticate(request, state, "reading (this service keeps reads private)")


def require_admin(request: Request, state: State) -> Caller:
    """An admin token's caller; 401 without a token, 403 with a token that is not an admin's."""
    caller = _authenticate(request, state, "this action")
    if not caller.admin:
        raise HTTPException(403, f"token '{caller.name}' is not an admin token: only an admin may do this")
    return caller


def check_owner(caller: Caller, owner: Optional[str], what: str) -> None:
    """403 unless ``caller`` owns ``what`` (created it with this token) or is an admin."""
    if caller.admin or (owner is not None and owner == caller.name):
        return
    whose = f"belongs to token '{owner}'" if owner else "was created outside the service (CLI or library)"
    raise HTTPException(403, f"{what} {whose}: only its owner or an admin may change or delete it")


Writer = Annotated[Caller, Depends(require_writer)]
Reader = Annotated[Optional[Caller], Depends(require_reader)]
Admin = Annotated[Caller, Depends(require_admin)]
