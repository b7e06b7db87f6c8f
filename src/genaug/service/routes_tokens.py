"""Routes for API tokens: who am I, and (admins only) create, list and revoke tokens.

An admin can give a browser-only user a token without a shell on the server: the secret is in
the answer to ``POST /api/tokens`` once, and only its hash is stored.
"""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from ..store.registry import validate_name
from ..store.tokens import TokenExistsError, create_token, list_tokens, revoke_token
from .auth import Admin, Reader, State

router = APIRouter(prefix="/api", tags=["tokens"])


class TokenRequest(BaseModel):
    """``{"name": "alice", "admin": false}``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=64, description="who or what the token is for")
    admin: bool = Field(False, description="may delete anyone's things and manage tokens")


@router.get("/me")
def who_am_i(caller: Reader) -> dict[str, Any]:
    """The token sent with this request: its name and whether it is an admin's (nulls without one)."""
    return {"name": caller.name if caller else None, "admin": bool(caller and caller.admin),
            "authenticated": caller is not None}


@router.get("/tokens")
def get_tokens(state: State, _: Admin) -> list[dict[str, Any]]:
    """Every token's name, role and dates (never the secrets: they are not stored)."""
    return [{"name": row.name, "admin": bool(row.admin), "created_at": _iso(row.created_at),
             "last_used_at": _iso(row.last_used_at)} for row in list_tokens(state.registry)]


@router.post("/tokens", status_code=201)
def post_token(body: TokenRequest, state: State, _: Admin) -> dict[str, Any]:
    """Create a token; the answer holds its secret, shown this once."""
    try:
        name = validate_name(body.name)
    except ValueError as error:
        raise HTTPException(422, f"name: {str(error).replace('model name', 'token name')}") from None
    try:
        secret = create_token(state.registry, name, admin=body.admin)
    except TokenExistsError as error:
        raise HTTPException(409, f"name: {error}") from None
    return {"name": name, "admin": body.admin, "token": secret,
            "note": "keep it: it is not shown again; send it as 'Authorization: Bearer <token>'"}


@router.delete("/tokens/{name}", status_code=204)
def delete_token(name: str, state: State, caller: Admin) -> Response:
    """Revoke a token: requests with it are refused from now on."""
    if name == caller.name:
        raise HTTPException(409, "name: that is the token of this request; revoke it with another admin token "
                                 "or with genaug token revoke")
    if not revoke_token(state.registry, name):
        raise HTTPException(404, f"name: no token named {name!r}")
    return Response(status_code=204)


def _iso(moment) -> Optional[str]:
    from ..jobs.table import as_utc

    moment = as_utc(moment)
    return moment.isoformat() if moment else None
