"""walking-skeleton notification schema (adopted as is when the tables already exist)

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Databases of the walking skeleton were made by ``create_all``: keep what is there.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "contact_profiles" not in existing:
        op.create_table(
            "contact_profiles",
            sa.Column("case_id", sa.String(length=64), nullable=False),
            sa.Column("province", sa.String(length=2), nullable=False),
            sa.Column("sms_consent", sa.Boolean(), nullable=False),
            sa.Column("language", sa.String(length=8), nullable=False),
            sa.PrimaryKeyConstraint("case_id"),
        )
    if "follow_ups" not in existing:
        op.create_table(
            "follow_ups",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("case_id", sa.String(length=64), nullable=False),
            sa.Column("province", sa.String(length=2), nullable=False),
            sa.Column("referral_id", sa.String(length=64), nullable=True),
            sa.Column("template", sa.String(length=64), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("due_at", UtcDateTime(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("claimed_by", sa.String(length=64), nullable=True),
            sa.Column("lease_until", UtcDateTime(), nullable=True),
            sa.Column("sent_at", UtcDateTime(), nullable=True),
            sa.Column("segments", sa.Integer(), nullable=True),
            sa.Column("last_error", sa.String(length=300), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_follow_ups_case_id", "follow_ups", ["case_id"])
        op.create_index("ix_follow_ups_status", "follow_ups", ["status"])
        op.create_index("ix_follow_ups_due_at", "follow_ups", ["due_at"])
    if "outbox" not in existing:
        op.create_table(
            "outbox",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("event_id", sa.String(length=64), nullable=False),
            sa.Column("subject", sa.String(length=255), nullable=False),
            sa.Column("headers", sa.Text(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Column("sent_at", UtcDateTime(), nullable=True),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("event_id"),
        )
        op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "id"])
    if "inbox" not in existing:
        op.create_table(
            "inbox",
            sa.Column("consumer", sa.String(length=100), nullable=False),
            sa.Column("event_id", sa.String(length=64), nullable=False),
            sa.Column("applied_at", UtcDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("consumer", "event_id"),
        )
    if "delivery_failures" not in existing:
        op.create_table(
            "delivery_failures",
            sa.Column("consumer", sa.String(length=100), nullable=False),
            sa.Column("stream_seq", sa.BigInteger(), nullable=False),
            sa.Column("event_id", sa.String(length=64), nullable=True),
            sa.Column("error", sa.Text(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("last_failed_at", UtcDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("consumer", "stream_seq"),
        )


def downgrade() -> None:
    for table in ("delivery_failures", "inbox", "outbox", "follow_ups", "contact_profiles"):
        op.drop_table(table)
