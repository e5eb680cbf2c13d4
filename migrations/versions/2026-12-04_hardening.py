"""Hardening (issue 22): resumable account deletion (a deletion mark and a claim on users).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Resumable account deletion: the marker that tells a deletion in progress from a
    # deactivated account, and the claim of the process finishing it. Nullable: a plain
    # ADD COLUMN on SQLite, no rebuild.
    op.add_column("users", sa.Column("deletion_started_at", UTCDateTime(), nullable=True))
    op.add_column("users", sa.Column("deletion_claimed_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Rebuilt on SQLite: keep AUTOINCREMENT, or deleted users' ids would come back.
    with op.batch_alter_table("users", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("deletion_claimed_until")
        batch.drop_column("deletion_started_at")
