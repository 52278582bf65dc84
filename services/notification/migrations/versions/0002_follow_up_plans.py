"""follow-up plans, sending state, receipts and replies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FLAGS = ("do_not_contact", "closed", "opened", "erased")


def upgrade() -> None:
    op.create_table(
        "webhook_calls",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("kind", "external_id"),
    )
    with op.batch_alter_table("contact_profiles") as batch:
        batch.add_column(sa.Column("safe_hours_start", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("safe_hours_end", sa.String(length=5), nullable=True))
        for flag in _FLAGS:
            batch.add_column(sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("sms_channel", sa.Boolean(), nullable=False, server_default=sa.true()))
    # Profiles the skeleton recorded came from CaseOpened.
    op.execute(sa.text("UPDATE contact_profiles SET opened = :yes").bindparams(yes=True))
    with op.batch_alter_table("follow_ups") as batch:
        batch.add_column(sa.Column("plan", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("appointment_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("delivered_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("encoding", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("provider_message_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("phone_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=64), nullable=True))
        batch.drop_index("ix_follow_ups_due_at")
        batch.drop_index("ix_follow_ups_status")
        batch.create_index("ix_follow_ups_due", ["status", "due_at"])
        batch.create_index("ix_follow_ups_phone_hash", ["phone_hash"])
        batch.create_index("ix_follow_ups_provider_message_id", ["provider_message_id"])
        batch.create_index("ix_follow_ups_referral_id", ["referral_id"])


def downgrade() -> None:
    with op.batch_alter_table("follow_ups") as batch:
        for index in (
            "ix_follow_ups_referral_id",
            "ix_follow_ups_provider_message_id",
            "ix_follow_ups_phone_hash",
        ):
            batch.drop_index(index)
        batch.drop_index("ix_follow_ups_due")
        batch.create_index("ix_follow_ups_status", ["status"])
        batch.create_index("ix_follow_ups_due_at", ["due_at"])
        for column in (
            "reason",
            "phone_hash",
            "provider_message_id",
            "encoding",
            "delivered_at",
            "appointment_at",
            "plan",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("contact_profiles") as batch:
        for column in ("sms_channel", *_FLAGS, "safe_hours_end", "safe_hours_start"):
            batch.drop_column(column)
    op.drop_table("webhook_calls")
