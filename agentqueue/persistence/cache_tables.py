"""L3 cache tables: entries point at response bodies stored once per content hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentqueue.persistence.base import Base


class CacheBodyRecord(Base):
    """One response text, keyed by its SHA-256, shared by every entry that produced it."""

    __tablename__ = "cache_bodies"

    body_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    # Bumped by every store that references the body, so purge never deletes one in use.
    last_stored_at: Mapped[datetime]

    __table_args__ = (Index("ix_cache_bodies_last_stored_at", "last_stored_at"),)


class CacheEntryRecord(Base):
    """One cached answer for one cache key; tags (tenant, agent type, model) allow invalidation."""

    __tablename__ = "cache_entries"

    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    agent_type: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    policy: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(64))
    response_model: Mapped[str] = mapped_column(String(128))
    body_hash: Mapped[str] = mapped_column(String(64), ForeignKey("cache_bodies.body_hash"))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cached_input_tokens: Mapped[int] = mapped_column(Integer)
    finish_reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_cache_entries_expires_at", "expires_at"),
        Index("ix_cache_entries_tenant_agent_type", "tenant", "agent_type"),
        Index("ix_cache_entries_model", "model"),
        Index("ix_cache_entries_body_hash", "body_hash"),
    )
