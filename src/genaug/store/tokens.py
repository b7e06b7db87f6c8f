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

from sqlalchemy import DateTime, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .registry import Base, Registry, validate_name

TOKEN_PREFIX = "ga_"


class TokenRow(Base):
    """One API token: a name for people, the hash for checking."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)


class TokenExistsError(ValueError):
    """A token with this name exists already."""


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(registry: Registry, name: str) -> str:
    """Create the token ``name`` and return its secret (shown once, never stored)."""
    validate_name(name)
    Base.metadata.create_all(registry.engine, tables=[TokenRow.__table__])
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with registry.session() as session:
            session.add(TokenRow(id=str(uuid.uuid4()), name=name, token_hash=hash_token(secret),
                                 created_at=datetime.now(timezone.utc)))
    except IntegrityError:
        raise TokenExistsError(f"a token named {name!r} exists already (revoke it first)") from None
    return secret


def list_tokens(registry: Registry) -> list[TokenRow]:
    """Every token row (names and dates; the hashes are useless to a reader)."""
    Base.metadata.create_all(registry.engine, tables=[TokenRow.__table__])
    with registry.session() as session:
        return list(session.scalars(select(TokenRow).order_by(TokenRow.created_at)))


def revoke_token(registry: Registry, name: str) -> bool:
    """Delete the token ``name``; False when there is none."""
    Base.metadata.create_all(registry.engine, tables=[TokenRow.__table__])
    with registry.session() as session:
        return session.execute(delete(TokenRow).where(TokenRow.name == name)).rowcount == 1


def check_token(registry: Registry, secret: str) -> Optional[str]:
    """The name of the token ``secret``, or None when it is not a valid token."""
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
        return row.name
