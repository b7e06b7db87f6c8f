"""API tokens for the service: created by ``genaug token create NAME``, stored only as hashes.

A token is 32 random bytes (URL-safe base64), prefixed ``ga_`` so that it is recognisable in
logs and secret scanners. Only its SHA-256 is kept: the tokens are long random strings, so
a fast hash is enough (there is nothing to brute-force), and a stolen database does not
hand out working tokens.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timezone
from typing import Optional

from dataclasses import dataclass

from sqlalchemy import Boolean, DateTime, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .registry import Base, Registry, add_missing_columns, validate_name

TOKEN_PREFIX = "ga_"


class TokenRow(Base):
    """One API token: a name for people, the hash for checking."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    # An admin may delete anyone's datasets, models and jobs, read job tracebacks, and create
    # and revoke tokens through the API. None (tokens from before this column) = not admin.
    admin: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True, default=False)


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the token's name and whether it is an admin token."""

    name: str
    admin: bool = False


def _ensure_table(registry: Registry) -> None:
    Base.metadata.create_all(registry.engine, tables=[TokenRow.__table__])
    add_missing_columns(registry.engine, [TokenRow.__table__])


class TokenExistsError(ValueError):
    """A token with this name exists already."""


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(registry: Registry, name: str, admin: bool = False) -> str:
    """Create the token ``name`` (an admin token when ``admin``) and return its secret (shown
    once, never stored)."""
    validate_name(name)
    _ensure_table(registry)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with registry.session() as session:
            session.add(TokenRow(id=str(uuid.uuid4()), name=name, token_hash=hash_token(secret),
                                 created_at=datetime.now(timezone.utc), admin=bool(admin)))
    except IntegrityError:
        raise TokenExistsError(f"a token named {name!r} exists already (revoke it first)") from None
    return secret


def list_tokens(registry: Registry) -> list[TokenRow]:
    """Every token row (names and dates; the hashes are useless to a reader)."""
    _ensure_table(registry)
    with registry.session() as session:
        return list(session.scalars(select(TokenRow).order_by(TokenRow.created_at)))


def revoke_token(registry: Registry, name: str) -> bool:
    """Delete the token ``name``; False when there is none."""
    _ensure_table(registry)
    with registry.session() as session:
        return session.execute(delete(TokenRow).where(TokenRow.name == name)).rowcount == 1


def check_token(registry: Registry, secret: str) -> Optional[str]:
    """The name of the token ``secret``, or None when it is not a valid token."""
    caller = token_caller(registry, secret)
    return caller.name if caller else None


def token_caller(registry: Registry, secret: str) -> Optional[Caller]:
    """Who holds the token ``secret`` (name, admin), or None when it is not a valid token."""
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    digest = hash_token(secret)
    with registry.session() as session:
        row = session.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).one_or_none()
        # The lookup is by hash; compare again in constant time so that nothing depends on
        # how the database compares strings.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        now = datetime.now(timezone.utc)
        last = row.last_used_at
        # At most one write a minute per token: every request writing would serialise
        # concurrent requests on SQLite's single writer.
        if last is None or (now - (last if last.tzinfo else last.replace(tzinfo=timezone.utc))).total_seconds() > 60:
            session.execute(update(TokenRow).where(TokenRow.id == row.id).values(last_used_at=now))
        return Caller(row.name, bool(row.admin))
